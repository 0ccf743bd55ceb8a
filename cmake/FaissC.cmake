# FAISS C API for kb: defines kb::faiss_c, the one target kb code links to call <faiss/c_api/*.h>.
#
# Preferred: a libfaiss_c that is already installed (conda, vcpkg and source builds ship one).
# Fallback: kb_faiss_c, our own build of the few C API functions kb calls (index/faiss_capi/),
# over the C++ libfaiss. Debian 12's libfaiss-dev is the case this exists for: it installs the
# C API headers but not the library behind them.
#
# To pick a particular library, set KB_FAISS_C_LIBRARY (a libfaiss_c file) and, if its headers
# are not next to it, KB_FAISS_C_INCLUDE_DIR (the folder holding faiss/c_api/).

find_library(KB_FAISS_C_LIBRARY NAMES faiss_c
  DOC "an installed FAISS C API library; leave NOTFOUND to build kb_faiss_c")
# Headers from the library's own prefix first, so that they match it.
set(_kb_faiss_c_hint "")
if(KB_FAISS_C_LIBRARY)
  get_filename_component(_kb_faiss_c_hint "${KB_FAISS_C_LIBRARY}" DIRECTORY)
  set(_kb_faiss_c_hint "${_kb_faiss_c_hint}/../include" "${_kb_faiss_c_hint}/../../include")
endif()
find_path(KB_FAISS_C_INCLUDE_DIR NAMES faiss/c_api/faiss_c.h HINTS ${_kb_faiss_c_hint}
  DOC "folder holding faiss/c_api/*.h")
unset(_kb_faiss_c_hint)
find_package(faiss CONFIG QUIET)

if(NOT KB_FAISS_C_INCLUDE_DIR)
  message(FATAL_ERROR "FAISS C API headers (faiss/c_api/faiss_c.h) not found: "
    "install libfaiss-dev or set KB_FAISS_C_INCLUDE_DIR")
endif()

if(KB_FAISS_C_LIBRARY)
  # A shared libfaiss_c records its own dependency on libfaiss; a static one does not,
  # so it also needs the C++ libfaiss (and with it OpenMP and BLAS) and the C++ linker.
  get_filename_component(_kb_faiss_c_ext "${KB_FAISS_C_LIBRARY}" LAST_EXT)
  add_library(kb::faiss_c UNKNOWN IMPORTED)
  set_target_properties(kb::faiss_c PROPERTIES
    IMPORTED_LOCATION "${KB_FAISS_C_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${KB_FAISS_C_INCLUDE_DIR}")
  if(_kb_faiss_c_ext STREQUAL CMAKE_STATIC_LIBRARY_SUFFIX)
    if(NOT TARGET faiss)
      message(FATAL_ERROR "${KB_FAISS_C_LIBRARY} is static and needs the C++ libfaiss, "
        "but find_package(faiss CONFIG) found none: set faiss_DIR")
    endif()
    find_package(OpenMP REQUIRED)
    set_target_properties(kb::faiss_c PROPERTIES
      IMPORTED_LINK_INTERFACE_LANGUAGES CXX
      INTERFACE_LINK_LIBRARIES faiss)
  endif()
  unset(_kb_faiss_c_ext)
  message(STATUS "FAISS C API: system library ${KB_FAISS_C_LIBRARY}")
  return()
endif()

if(NOT TARGET faiss)
  message(FATAL_ERROR "no libfaiss_c and no C++ libfaiss to build one over: "
    "install libfaiss-dev (Debian) or set KB_FAISS_C_LIBRARY / faiss_DIR")
endif()
# libfaiss's exported link interface names OpenMP::OpenMP_CXX without finding it.
find_package(OpenMP REQUIRED)

set(_kb_capi_dir ${CMAKE_CURRENT_LIST_DIR}/../index/faiss_capi)
add_library(kb_faiss_c STATIC
  ${_kb_capi_dir}/error.cpp
  ${_kb_capi_dir}/index.cpp
  ${_kb_capi_dir}/index_io.cpp
  ${_kb_capi_dir}/autotune.cpp)
unset(_kb_capi_dir)
target_include_directories(kb_faiss_c SYSTEM PUBLIC ${KB_FAISS_C_INCLUDE_DIR})
target_compile_options(kb_faiss_c PRIVATE ${KB_WARNINGS})
target_compile_features(kb_faiss_c PRIVATE cxx_std_17)
# PRIVATE: kb sees only the C API; a static library still passes faiss on to whoever links it.
target_link_libraries(kb_faiss_c PRIVATE faiss)
set_target_properties(kb_faiss_c PROPERTIES POSITION_INDEPENDENT_CODE ON)
add_library(kb::faiss_c ALIAS kb_faiss_c)

get_target_property(_kb_faiss_a faiss LOCATION)
message(STATUS "FAISS C API: building kb_faiss_c (index/faiss_capi) over ${_kb_faiss_a} "
  "${faiss_VERSION}; no libfaiss_c found")
unset(_kb_faiss_a)
