# Run by `cmake --install`: the systemd unit and the configuration file, whose
# paths depend on the prefix the install is for (--prefix may change it).
# The configuration file is the operator's: an existing one is kept.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(etc /etc)
else()
  set(etc ${CMAKE_INSTALL_PREFIX}/etc)
endif()
set(ALOFT_BINDIR ${CMAKE_INSTALL_PREFIX}/bin)
set(ALOFT_CONFIG ${etc}/aloft/aloftd.conf)
configure_file(${ALOFT_SOURCE_DIR}/dist/aloftd.service.in ${ALOFT_BINARY_DIR}/dist/aloftd.service @ONLY)
file(INSTALL ${ALOFT_BINARY_DIR}/dist/aloftd.service DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
if(EXISTS "$ENV{DESTDIR}${ALOFT_CONFIG}")
  message(STATUS "Kept: $ENV{DESTDIR}${ALOFT_CONFIG}")
else()
  file(INSTALL ${ALOFT_SOURCE_DIR}/dist/aloftd.conf DESTINATION ${etc}/aloft)
endif()
