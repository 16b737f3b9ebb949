// glibc_compat.cc — linked into the extension only by the portable build (CPUFORMER_PORTABLE=ON,
// cmake/cpuformer_portable.cmake), so that a module built against glibc 2.36 loads on glibc 2.28.
// Not part of the layer ladder: no cpuformer code calls anything here; the linker's --wrap=<symbol> sends every
// reference to <symbol> (ours, and those of the libstdc++.a members linked in) to __wrap_<symbol> below.
// - pthread_*: glibc 2.34 moved them from libpthread into libc under a new default version GLIBC_2.34 and kept the
//   old GLIBC_2.2.5 ones as the same code; the wrappers call the old versions, which every glibc since 2.2.5 has.
// - arc4random (GLIBC_2.36, std::random_device): the same bytes from getentropy (GLIBC_2.25), else /dev/urandom.
// - __libc_single_threaded (GLIBC_2.32, a variable, read by libstdc++ to skip atomics): defined here, hidden, as 0,
//   so libstdc++ always takes the atomic path, which is correct in every process.
// tools/build_wheel.sh and `auditwheel repair --plat manylinux_2_28_x86_64` check that nothing newer is left.
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <cstdlib>

extern "C" {

__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;

int cpuformer_old_pthread_create(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
int cpuformer_old_pthread_join(pthread_t, void**);
int cpuformer_old_pthread_detach(pthread_t);
int cpuformer_old_pthread_once(pthread_once_t*, void (*)());
int cpuformer_old_pthread_key_create(pthread_key_t*, void (*)(void*));
int cpuformer_old_pthread_rwlock_rdlock(pthread_rwlock_t*);
int cpuformer_old_pthread_rwlock_wrlock(pthread_rwlock_t*);
int cpuformer_old_pthread_rwlock_unlock(pthread_rwlock_t*);
__asm__(".symver cpuformer_old_pthread_create, pthread_create@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_join, pthread_join@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_detach, pthread_detach@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_once, pthread_once@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_key_create, __pthread_key_create@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_rwlock_rdlock, pthread_rwlock_rdlock@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_rwlock_wrlock, pthread_rwlock_wrlock@GLIBC_2.2.5, remove");
__asm__(".symver cpuformer_old_pthread_rwlock_unlock, pthread_rwlock_unlock@GLIBC_2.2.5, remove");

__attribute__((visibility("hidden"))) int __wrap_pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                                                                 void* (*start)(void*), void* arg) {
  return cpuformer_old_pthread_create(thread, attr, start, arg);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_join(pthread_t thread, void** result) {
  return cpuformer_old_pthread_join(thread, result);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_detach(pthread_t thread) {
  return cpuformer_old_pthread_detach(thread);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_once(pthread_once_t* once, void (*init)()) {
  return cpuformer_old_pthread_once(once, init);
}
__attribute__((visibility("hidden"))) int __wrap___pthread_key_create(pthread_key_t* key, void (*destroy)(void*)) {
  return cpuformer_old_pthread_key_create(key, destroy);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_rwlock_rdlock(pthread_rwlock_t* lock) {
  return cpuformer_old_pthread_rwlock_rdlock(lock);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_rwlock_wrlock(pthread_rwlock_t* lock) {
  return cpuformer_old_pthread_rwlock_wrlock(lock);
}
__attribute__((visibility("hidden"))) int __wrap_pthread_rwlock_unlock(pthread_rwlock_t* lock) {
  return cpuformer_old_pthread_rwlock_unlock(lock);
}

__attribute__((visibility("hidden"))) uint32_t __wrap_arc4random() {
  uint32_t value = 0;
  if (getentropy(&value, sizeof value) == 0) return value;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value);
  if (fd >= 0) close(fd);
  if (!ok) std::abort();  // arc4random cannot fail either: it aborts when the kernel gives no randomness
  return value;
}

}  // extern "C"
