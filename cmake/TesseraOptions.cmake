# Compiler flags shared by every tessera target: warnings, sanitizers, fuzzing.

add_library(tessera_build_flags INTERFACE)
target_compile_options(tessera_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                                                     -Wnon-virtual-dtor -Wimplicit-fallthrough)
if(TESSERA_WERROR)
  target_compile_options(tessera_build_flags INTERFACE -Werror)
endif()

if(TESSERA_SANITIZE)
  string(REPLACE ";" "," _tessera_san "${TESSERA_SANITIZE}")
  message(STATUS "tessera: sanitizers ${_tessera_san}")
  add_compile_options(-fsanitize=${_tessera_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_tessera_san})
endif()

if(TESSERA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TESSERA_FUZZ=ON needs clang: configure with the 'fuzz' preset "
                        "(CMAKE_CXX_COMPILER=clang++) after `scripts/setup --fuzz`")
  endif()
  # Every library is instrumented for coverage; only fuzz targets link the libFuzzer main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
