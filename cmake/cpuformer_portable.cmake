# cpuformer_make_portable(<target>)  (CPUFORMER_PORTABLE=ON; tools/build_wheel.sh)
# Makes the extension loadable on glibc 2.28 (manylinux_2_28) although it is built with the host's gcc 12 and
# glibc 2.36: libstdc++ is linked in statically and hidden (the host's needs GLIBCXX_3.4.29), and the few glibc
# symbols whose default version is newer than 2.28 are re-pointed at older ones or replaced by
# csrc/portable/glibc_compat.cc through the linker's --wrap (which also reaches the libstdc++.a members).
# libgcc stays the shared libgcc_s.so.1 (manylinux allows it): gcc 12's static unwinder calls _dl_find_object
# (GLIBC_2.35) with no fallback. libgomp stays shared too: tools/build_wheel.sh has auditwheel bundle a copy
# built for old glibc. libpthread.so.0 is named so that the GLIBC_2.2.5 pthread functions are found on glibc < 2.34.
function(cpuformer_make_portable target)
  set(wrapped pthread_create pthread_join pthread_detach pthread_once __pthread_key_create
    pthread_rwlock_rdlock pthread_rwlock_wrlock pthread_rwlock_unlock arc4random)
  target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/csrc/portable/glibc_compat.cc)
  # Not LTO: its toplevel .symver directives would be lost in the LTO IR (the pins came out unresolved).
  set_source_files_properties(${PROJECT_SOURCE_DIR}/csrc/portable/glibc_compat.cc PROPERTIES COMPILE_OPTIONS -fno-lto)
  target_link_options(${target} PRIVATE -static-libstdc++ -Wl,--exclude-libs,ALL
    -Wl,--push-state,--no-as-needed,-l:libpthread.so.0,--pop-state)
  foreach(symbol IN LISTS wrapped)
    target_link_options(${target} PRIVATE -Wl,--wrap=${symbol})
  endforeach()
endfunction()
