# What `cmake --install` puts where (GNUInstallDirs), and the Debian package CPack makes of it
# (scripts/build-deb.sh; its contents and dependencies are checked by tests/package/deb_test.sh).
# The berth executable installs itself (cli/CMakeLists.txt), and so do the man pages (man/).

install(DIRECTORY ${PROJECT_SOURCE_DIR}/schemas/ DESTINATION ${CMAKE_INSTALL_DATADIR}/berth/schemas
        FILES_MATCHING PATTERN "*.json")
# bash-completion loads completions/<command> the first time <command> is completed.
install(FILES ${PROJECT_SOURCE_DIR}/completion/berth.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME berth)

set(BERTH_PACKAGE_MAINTAINER "berth maintainers <maintainers@users.noreply.r-seed-6cd03fbb.example>"
    CACHE STRING "The Maintainer of the Debian package")

set(CPACK_PACKAGE_NAME berth)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${BERTH_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "declarative reconciler for fleets of LXD container hosts")
# Debian wants the lines of the extended description under 80 characters.
set(CPACK_PACKAGE_DESCRIPTION
    "berth reads a YAML file that declares LXD hosts, images and containers
(placement, power state, config, devices, profiles, snapshots, copies) and
makes the hosts match it. berth plan reads every host over the LXD REST API
and prints an ordered plan of what would change; berth apply carries it out
in parallel, with consent for restarts and moves, a lock, and a journal that
lets the next run finish or undo what an interrupted one left half-done.")
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)
# Not the umask of whoever builds: Debian wants 0755 directories.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
    WORLD_READ WORLD_EXECUTE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # berth_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: from the libraries the installed executables link, as dpkg-shlibdeps finds them.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
include(CPack)
