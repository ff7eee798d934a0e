# What `make install` puts where (PREFIX and DESTDIR as usual):
#   bin/aloft, bin/aloftd, bin/aloft-node
#   share/aloft/admin/            the admin UI, where an installed aloftd looks by default
#   share/man/man1/*.1            man pages made from the programs' --help (scripts/helpdoc.sh)
#   share/bash-completion/completions/{aloft,aloftd,aloft-node}
#   share/doc/aloft/              README, CHANGELOG, LICENSE, docs/
#   lib/sysusers.d/aloft.conf     the system user aloftd runs as
#   lib/systemd/system/aloftd.service and <sysconfdir>/aloft/aloftd.conf
#     (cmake/install-etc.cmake: /etc for PREFIX=/usr, else PREFIX/etc)
include(GNUInstallDirs)

install(TARGETS aloft aloftd aloft-node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The admin UI is built by npm (make www); an install without it would be a
# server with no UI, so it is an error with the remedy.
install(CODE "
  if(NOT EXISTS \"${CMAKE_BINARY_DIR}/admin/index.html\")
    message(FATAL_ERROR \"the admin UI is not built in ${CMAKE_BINARY_DIR}/admin: run make www first (make install does)\")
  endif()")
install(DIRECTORY ${CMAKE_BINARY_DIR}/admin/ DESTINATION ${CMAKE_INSTALL_DATADIR}/aloft/admin)

set(ALOFT_MAN_PAGES)
foreach(prog aloft aloftd aloft-node)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${prog}.1
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/helpdoc.sh man ${CMAKE_BINARY_DIR}/bin ${prog} > ${CMAKE_BINARY_DIR}/man/${prog}.1
    DEPENDS aloft ${prog} ${CMAKE_SOURCE_DIR}/scripts/helpdoc.sh VERBATIM)
  list(APPEND ALOFT_MAN_PAGES ${CMAKE_BINARY_DIR}/man/${prog}.1)
  install(FILES ${CMAKE_SOURCE_DIR}/dist/aloft.bash-completion
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ${prog})
endforeach()
add_custom_target(man ALL DEPENDS ${ALOFT_MAN_PAGES})
install(FILES ${ALOFT_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

install(FILES dist/aloft.sysusers DESTINATION lib/sysusers.d RENAME aloft.conf)

install(FILES README.md CHANGELOG.md LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

install(CODE "set(ALOFT_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
              set(ALOFT_BINARY_DIR \"${CMAKE_BINARY_DIR}\")")
install(SCRIPT ${CMAKE_SOURCE_DIR}/cmake/install-etc.cmake)
