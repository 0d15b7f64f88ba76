SUMMARY = "Camera control service for ARM edge boards"
DESCRIPTION = "V4L2/RTSP cameras driven through MediaMTX, JSON-RPC 2.0 over WebSocket (port 8002)."
# No public homepage yet (HOMEPAGE left unset; check-packaging suppresses that lint).
SECTION = "multimedia"
LICENSE = "MIT"
# The license is declared in Cargo.toml (no separate LICENSE file yet).
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=29c91c89ee62891477a1476375143bef"

# Native build dependencies of the crate set (scripts/check-packaging keeps these in step
# with Cargo.lock):
#  - udev 0.9 -> libudev-sys links libudev through pkg-config (udev is provided by systemd).
#  - v4l 0.14 -> v4l2-sys-mit runs bindgen at build time, which loads libclang: clang-native
#    comes from meta-clang (LAYERDEPENDS clang-layer) and must parse the *target's* kernel
#    headers, hence --target/--sysroot.
DEPENDS = "clang-native udev"

# Source: override CAMERA_SERVICE_GIT_URI / SRCREV in local.conf or a bbappend; for a local
# checkout use externalsrc (see docs/packaging.md). The crate list below must come from the
# Cargo.lock of the same commit: scripts/gen-yocto-crates regenerates it.
CAMERA_SERVICE_GIT_URI ?= "git://git.example.com/camera-service.git;protocol=https;branch=main"
PV = "0.1.0+git"
SRC_URI = "${CAMERA_SERVICE_GIT_URI}"
# Tip of the branch by default (the layer lives in the same repository, and check-packaging
# keeps the crates .inc in sync with that tip). Release images pin SRCREV to a tag's commit.
# nooelint: oelint.vars.autorev
SRCREV ?= "${AUTOREV}"
S = "${UNPACKDIR}/git"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd features_check

# bindgen: libclang from clang-native, parsing the target sysroot's headers.
export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--target=${TARGET_SYS} --sysroot=${STAGING_DIR_TARGET}"

# Only the service package of the workspace (tests/mediamtx-double is test-only).
CARGO_BUILD_FLAGS:append = " -p camera-service"
# --version: build.rs takes the date from SOURCE_DATE_EPOCH (set by Yocto) and the commit
# from `git rev-parse` in ${S} (or CS_BUILD_GIT_COMMIT if exported).

do_install:append() {
    install -d -m 0750 ${D}${sysconfdir}/camera-service
    install -m 0640 ${S}/docs/config.example.toml ${D}${sysconfdir}/camera-service/config.toml
    chown -R root:camera-service ${D}${sysconfdir}/camera-service

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/camera-service.service ${D}${systemd_system_unitdir}/
    install -d ${D}${systemd_unitdir}/system-preset
    install -m 0644 ${S}/systemd/camera-service.preset ${D}${systemd_unitdir}/system-preset/50-camera-service.preset
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    install -m 0644 ${S}/systemd/99-camera-service.rules ${D}${nonarch_base_libdir}/udev/rules.d/
    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/camera-service.sysusers.conf ${D}${nonarch_libdir}/sysusers.d/camera-service.conf
    install -m 0644 ${S}/systemd/camera-service.tmpfiles.conf ${D}${nonarch_libdir}/tmpfiles.d/camera-service.conf

    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/systemd/mediamtx.yml ${S}/systemd/mediamtx.service ${D}${docdir}/${BPN}/
}

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/camera-service --no-create-home \
                       --shell /sbin/nologin --gid camera-service --groups video camera-service"
GROUPADD_PARAM:${PN} = "--system camera-service"

SYSTEMD_SERVICE:${PN} = "camera-service.service"
# Started by the udev rule when a V4L2 capture device appears, not at every boot (the
# preset says the same for images that run `systemctl preset-all`). RTSP-only boards:
# SYSTEMD_AUTO_ENABLE:pn-camera-service = "enable" in local.conf.
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

CONFFILES:${PN} = "${sysconfdir}/camera-service/config.toml"
FILES:${PN} += "${systemd_system_unitdir}/camera-service.service \
                ${systemd_unitdir}/system-preset/50-camera-service.preset \
                ${nonarch_base_libdir}/udev/rules.d/99-camera-service.rules \
                ${nonarch_libdir}/sysusers.d/camera-service.conf \
                ${nonarch_libdir}/tmpfiles.d/camera-service.conf"

RDEPENDS:${PN} = "ffmpeg"
RRECOMMENDS:${PN} = "mediamtx"

REQUIRED_DISTRO_FEATURES = "systemd"
