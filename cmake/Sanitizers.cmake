# ASan+UBSan for every target when BERTH_SANITIZE is on (the test command builds both ways).
# BERTH_FUZZ adds libFuzzer's coverage instrumentation to the same two sanitizers, so that the
# fuzzers (fuzz/) steer by what berth's own code does; only the fuzz executables link libFuzzer.
add_library(berth_settings INTERFACE)
if(BERTH_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "BERTH_FUZZ needs clang, which ships libFuzzer; this build directory uses "
                        "${CMAKE_CXX_COMPILER_ID}. Configure a fresh one with CC=clang CXX=clang++.")
  endif()
  target_compile_options(berth_settings INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(berth_settings INTERFACE -fsanitize=fuzzer-no-link,address,undefined)
elseif(BERTH_SANITIZE)
  target_compile_options(berth_settings INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(berth_settings INTERFACE -fsanitize=address,undefined)
endif()
