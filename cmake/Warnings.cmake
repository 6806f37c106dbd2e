# Warnings for berth's own targets, as an INTERFACE target linked into each of them.
# -Wnull-dereference is left out: at -O2 GCC 12 reports it inside nlohmann_json and libstdc++ inlines.
add_library(berth_warnings INTERFACE)
target_compile_options(berth_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  $<$<BOOL:${BERTH_WERROR}>:-Werror>)
