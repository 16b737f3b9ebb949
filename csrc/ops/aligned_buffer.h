// aligned_buffer.h — owning, 64-byte aligned storage for packed weights (float or int8) and workspaces.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace cpuformer {

template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t count) : size_(count) {
    if (count == 0) return;
    size_t bytes = (count * sizeof(T) + 63) / 64 * 64;  // aligned_alloc wants a multiple of the alignment
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
  }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  AlignedArray(AlignedArray&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedArray& operator=(AlignedArray&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~AlignedArray() { std::free(data_); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void zero() { if (data_) std::memset(data_, 0, size_ * sizeof(T)); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

using AlignedBuffer = AlignedArray<float>;

}  // namespace cpuformer
