# Install rules for what the Debian package ships besides the systemd/ files (those are in
# systemd/CMakeLists.txt): the two programs, the Varlink interface, the profile's XSD, the
# default configuration and the man pages. Kept here, not in daemon/ or hbsctl/, so that
# packaging has one place to read.
include(GNUInstallDirs)

install(TARGETS hbsd RUNTIME DESTINATION "${CMAKE_INSTALL_SBINDIR}")
install(TARGETS hbsctl RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

# For front-end authors and varlink tooling; hbsd itself compiles the same text in.
install(FILES "${HBSD_SHARED_DIR}/protocol/vn.hocbaso.Signer.varlink"
              "${PROJECT_SOURCE_DIR}/dsig/hocba.xsd"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/hbsd")

# The documented example is the default configuration: every key with its default, nothing
# granted ([[access]] rules commented out), so a fresh install serves no one until an
# administrator says who may sign. Always /etc (a conffile in the package), whatever the prefix.
install(FILES "${PROJECT_SOURCE_DIR}/daemon/hbsd.toml.example"
        DESTINATION "/etc/hbsd" RENAME hbsd.toml)
install(FILES "${PROJECT_SOURCE_DIR}/daemon/hbsd.toml.example"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" RENAME hbsd.toml.example)

install(FILES "${PROJECT_SOURCE_DIR}/docs/man/hbsd.8" DESTINATION "${CMAKE_INSTALL_MANDIR}/man8")
install(FILES "${PROJECT_SOURCE_DIR}/docs/man/hbsctl.1" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
install(FILES "${PROJECT_SOURCE_DIR}/docs/man/hbsd.toml.5" DESTINATION "${CMAKE_INSTALL_MANDIR}/man5")
