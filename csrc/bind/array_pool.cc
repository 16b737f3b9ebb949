// array_pool.cc — a numpy data allocator that keeps freed large blocks for reuse, installed around a model's
// forward pass (cpuformer.array_pool.pooled_arrays).
//
// Why: a forward pass creates and drops the same large activations in every layer and every call. glibc returns
// such blocks to the kernel (mmap, heap trim), so each one page-faults afresh: MiniLM int8 at b32 s128 took 2,560
// minor faults and 20 ms of kernel time per 266 ms call on a Zen 4 EPYC (240 ms with malloc tuned to keep them).
// numpy (>= 1.22) lets a context variable choose the allocator of new arrays (PyDataMem_SetHandler), so the pool
// covers our ops' outputs and the numpy temporaries of the Python layers without changing malloc for the process.
// Blocks of at least kMinPooledBytes are cached by exact size (shapes repeat layer after layer); at most
// limit_bytes stay cached, the oldest going first. Every block comes from malloc, so realloc and free of blocks
// the pool never saw stay correct.
#include <pthread.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "bind/bindings.h"

namespace py = pybind11;

namespace cpuformer::bind {
namespace {

// numpy's PyDataMem_Handler (ndarraytypes.h, version 1): the ABI numpy >= 1.22 reads through the capsule.
struct DataMemAllocator {
  void* ctx;
  void* (*malloc)(void* ctx, size_t size);
  void* (*calloc)(void* ctx, size_t nelem, size_t elsize);
  void* (*realloc)(void* ctx, void* ptr, size_t new_size);
  void (*free)(void* ctx, void* ptr, size_t size);
};
struct DataMemHandler {
  char name[127];
  uint8_t version;
  DataMemAllocator allocator;
};
// Index of PyDataMem_SetHandler in numpy's C-API table (__multiarray_api.h, numpy >= 1.22, numpy 2).
constexpr int kSetHandlerSlot = 304;

constexpr size_t kMinPooledBytes = size_t{1} << 20;
constexpr size_t kHugePageBytes = size_t{4} << 20;  // numpy asks for transparent huge pages from this size on

struct Pool {
  std::mutex mutex;
  struct Block {
    size_t size;
    void* ptr;
  };
  std::vector<Block> blocks;  // oldest first
  size_t cached_bytes = 0;
  size_t limit_bytes = default_limit();
  uint64_t hits = 0, misses = 0;

  static size_t default_limit() {
    const char* env = std::getenv("CPUFORMER_ARRAY_POOL_MB");
    return (env && *env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : 256) << 20;
  }

  void* take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      for (size_t i = blocks.size(); i-- > 0;) {  // newest first: likeliest still in cache
        if (blocks[i].size != size) continue;
        void* ptr = blocks[i].ptr;
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
        cached_bytes -= size;
        ++hits;
        return ptr;
      }
      ++misses;
    }
    void* ptr = std::malloc(size);
    if (ptr && size >= kHugePageBytes) {  // as numpy's own allocator does, on the whole pages inside the block
      const uintptr_t begin = (reinterpret_cast<uintptr_t>(ptr) + 4095) & ~uintptr_t{4095};
      const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + size) & ~uintptr_t{4095};
#ifdef MADV_HUGEPAGE
      if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
    }
    return ptr;
  }

  void give(void* ptr, size_t size) {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (size > limit_bytes) {
        evicted.push_back(ptr);
      } else {
        blocks.push_back({size, ptr});
        cached_bytes += size;
        size_t drop = 0;
        while (cached_bytes > limit_bytes) {
          cached_bytes -= blocks[drop].size;
          evicted.push_back(blocks[drop++].ptr);
        }
        blocks.erase(blocks.begin(), blocks.begin() + static_cast<std::ptrdiff_t>(drop));
      }
    }
    for (void* p : evicted) std::free(p);  // outside the lock
  }

  void clear() {
    std::vector<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex);
      dropped.swap(blocks);
      cached_bytes = 0;
    }
    for (const Block& b : dropped) std::free(b.ptr);
  }
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: arrays may outlive module teardown
  return *p;
}

// fork(): the child gets the pool in a consistent state (the forking thread holds the lock across the fork).
const bool g_atfork = [] {
  return pthread_atfork([] { pool().mutex.lock(); }, [] { pool().mutex.unlock(); },
                        [] { pool().mutex.unlock(); }) == 0;
}();

void* pool_malloc(void*, size_t size) {
  return size >= kMinPooledBytes ? pool().take(size) : std::malloc(size);
}
void* pool_calloc(void*, size_t nelem, size_t elsize) { return std::calloc(nelem, elsize); }
void* pool_realloc(void*, void* ptr, size_t new_size) { return std::realloc(ptr, new_size); }
void pool_free(void*, void* ptr, size_t size) {
  if (ptr != nullptr && size >= kMinPooledBytes)
    pool().give(ptr, size);
  else
    std::free(ptr);
}

DataMemHandler g_handler = [] {
  DataMemHandler h{};
  std::strncpy(h.name, "cpuformer_array_pool", sizeof(h.name) - 1);
  h.version = 1;
  h.allocator = {nullptr, pool_malloc, pool_calloc, pool_realloc, pool_free};
  return h;
}();

using SetHandlerFn = PyObject* (*)(PyObject*);

SetHandlerFn numpy_set_handler() {
  static SetHandlerFn fn = [] {
    py::object core;
    try {
      core = py::module_::import("numpy._core._multiarray_umath");  // numpy 2
    } catch (const py::error_already_set&) {
      core = py::module_::import("numpy.core._multiarray_umath");
    }
    py::object api = core.attr("_ARRAY_API");
    void** table = static_cast<void**>(PyCapsule_GetPointer(api.ptr(), nullptr));
    if (table == nullptr) throw py::error_already_set();
    return reinterpret_cast<SetHandlerFn>(table[kSetHandlerSlot]);
  }();
  return fn;
}

py::object handler_capsule() {
  static py::object capsule = py::reinterpret_steal<py::object>(PyCapsule_New(&g_handler, "mem_handler", nullptr));
  return capsule;
}

// Makes `handler` the allocator of new arrays in this context; returns the one it replaces.
py::object set_handler(const py::object& handler) {
  PyObject* previous = numpy_set_handler()(handler.ptr());
  if (previous == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(previous);
}

}  // namespace

void bind_array_pool(py::module_& m) {
  m.def("_array_pool_handler", &handler_capsule,
        "numpy's mem_handler capsule of the pooled allocator (cpuformer.array_pool installs it).");
  m.def("_set_array_handler", &set_handler, py::arg("handler"),
        "PyDataMem_SetHandler: make `handler` the allocator of new arrays in this context; returns the previous.");
  m.def("_array_pool_stats", [] {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mutex);
    py::dict d;
    d["cached_bytes"] = p.cached_bytes;
    d["cached_blocks"] = p.blocks.size();
    d["limit_bytes"] = p.limit_bytes;
    d["hits"] = p.hits;
    d["misses"] = p.misses;
    d["min_pooled_bytes"] = kMinPooledBytes;
    return d;
  }, "Blocks the array pool holds, its limit, and reuse counts (tests, diagnostics).");
  m.def("_array_pool_clear", [] { pool().clear(); }, "Free every block the array pool holds.");
  m.def("_set_array_pool_limit", [](size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(pool().mutex);
      pool().limit_bytes = bytes;
    }
    pool().clear();
  }, py::arg("bytes"), "Most bytes of freed blocks the pool keeps (0: keep none); clears it (tests).");
}

}  // namespace cpuformer::bind
