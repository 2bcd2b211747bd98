# cmake/install.cmake — install the header, both libraries, a CMake package
# (find_package(weft 0.2 CONFIG) gives weft::weft and weft::weft_static) and
# weft.pc for pkg-config.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(NOT WEFT_INSTALL)
  return()
endif()

set(WEFT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/weft)

install(TARGETS weft weft_static EXPORT weftTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# weft.hpp is the header-only C++ layer (C++17); the C library needs none.
install(FILES include/weft.h include/weft_inline.h include/weft.hpp ${PROJECT_BINARY_DIR}/include/weft_version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT weftTargets NAMESPACE weft:: FILE weftTargets.cmake
  DESTINATION ${WEFT_CMAKE_DIR})

configure_package_config_file(cmake/weftConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weftConfig.cmake
  INSTALL_DESTINATION ${WEFT_CMAKE_DIR})
# 0.x: a minor release may break the API, so 0.2 accepts 0.2.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/weftConfig.cmake
  ${PROJECT_BINARY_DIR}/weftConfigVersion.cmake
  DESTINATION ${WEFT_CMAKE_DIR})

# pkg-config: the prefix is found from where weft.pc lies (${pcfiledir}),
# so the package works wherever it was installed (cmake --install --prefix
# chooses at install time, after this file ran).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(WEFT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  string(REGEX REPLACE "[^/]+" ".." WEFT_PC_UP "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  set(WEFT_PC_PREFIX "\${pcfiledir}/${WEFT_PC_UP}")
endif()
foreach(d LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${d}}")
    set(WEFT_PC_${d} "${CMAKE_INSTALL_${d}}")
  else()
    set(WEFT_PC_${d} "\${prefix}/${CMAKE_INSTALL_${d}}")
  endif()
endforeach()
configure_file(cmake/weft.pc.in ${PROJECT_BINARY_DIR}/weft.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/weft.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
