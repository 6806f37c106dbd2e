# ASan+UBSan for every target when BERTH_SANITIZE is on (the test command builds both ways).
add_library(berth_settings INTERFACE)
if(BERTH_SANITIZE)
  target_compile_options(berth_settings INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(berth_settings INTERFACE -fsanitize=address,undefined)
endif()
