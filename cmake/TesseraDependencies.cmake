# Every dependency comes from a Debian bookworm package; scripts/setup installs them.

find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)          # libprotobuf-dev, protobuf-compiler (3.21)
find_package(gRPC CONFIG REQUIRED)       # libgrpc++-dev, protobuf-compiler-grpc (1.51)
find_package(absl CONFIG REQUIRED)       # libabsl-dev
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
if(TESSERA_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()

find_program(TESSERA_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# yaml-cpp's bookworm config names the target `yaml-cpp`; newer ones use `yaml-cpp::yaml-cpp`.
if(TARGET yaml-cpp AND NOT TARGET yaml-cpp::yaml-cpp)
  add_library(yaml-cpp::yaml-cpp ALIAS yaml-cpp)
endif()

# cpp-httplib (tests only): Debian ships it as a compiled library with a pkg-config file.
find_library(TESSERA_HTTPLIB_LIBRARY NAMES cpp-httplib)
find_path(TESSERA_HTTPLIB_INCLUDE httplib.h)
if(TESSERA_HTTPLIB_LIBRARY AND TESSERA_HTTPLIB_INCLUDE)
  add_library(tessera_httplib INTERFACE)
  target_link_libraries(tessera_httplib INTERFACE ${TESSERA_HTTPLIB_LIBRARY})
  target_include_directories(tessera_httplib SYSTEM INTERFACE ${TESSERA_HTTPLIB_INCLUDE})
else()
  message(FATAL_ERROR "cpp-httplib not found: run scripts/setup (libcpp-httplib-dev)")
endif()
