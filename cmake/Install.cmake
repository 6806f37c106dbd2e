# What `cmake --install` puts where (GNUInstallDirs).
# The berth executable installs itself (cli/CMakeLists.txt), and so do the man pages (man/).

install(DIRECTORY ${PROJECT_SOURCE_DIR}/schemas/ DESTINATION ${CMAKE_INSTALL_DATADIR}/berth/schemas
        FILES_MATCHING PATTERN "*.json")
# bash-completion loads completions/<command> the first time <command> is completed.
install(FILES ${PROJECT_SOURCE_DIR}/completion/berth.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME berth)
