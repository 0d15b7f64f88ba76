################################################################################
#
# camera-service
#
################################################################################

CAMERA_SERVICE_VERSION = 0.1.0
# Built from a local tree: by default the repository this BR2_EXTERNAL lives in.
CAMERA_SERVICE_SITE = $(or $(call qstrip,$(BR2_PACKAGE_CAMERA_SERVICE_SITE)),$(realpath $(BR2_EXTERNAL_CAMERA_SERVICE_PATH)/..))
CAMERA_SERVICE_SITE_METHOD = local
CAMERA_SERVICE_LICENSE = MIT
# Never copy build outputs or the packaging trees into the build directory.
CAMERA_SERVICE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target --exclude=/buildroot --exclude=/yocto --exclude=/VENDOR

# udev 0.9 -> libudev-sys links libudev (pkg-config); v4l 0.14 -> v4l2-sys-mit runs
# bindgen at build time: it loads host-clang's libclang and must parse the target's
# kernel headers from the staging dir. scripts/check-packaging keeps this in step with
# Cargo.lock.
CAMERA_SERVICE_DEPENDENCIES = host-pkgconf udev host-clang

# Buildroot's cargo infrastructure vendors crates in its download post-process, which
# does not run for SITE_METHOD = local: vendor them before the (offline) build instead,
# when host-rustc is ready. This downloads the crates in Cargo.lock once per build dir.
define CAMERA_SERVICE_CARGO_VENDOR
	if [ ! -d $(@D)/VENDOR ]; then \
	cd $(@D) && mkdir -p .cargo && \
		$(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		$(HOST_DIR)/bin/cargo vendor --locked --versioned-dirs VENDOR > .cargo/vendor.toml && \
		cat .cargo/vendor.toml >> .cargo/config.toml; \
	fi
endef
CAMERA_SERVICE_PRE_CONFIGURE_HOOKS += CAMERA_SERVICE_CARGO_VENDOR

# Keep the size-tuned release profile of Cargo.toml (Buildroot's PKG_CARGO_ENV would
# otherwise force 16 codegen units and BR2_ENABLE_LTO/BR2_OPTIMIZE_* values), and point
# bindgen at host-clang's libclang and the target headers.
CAMERA_SERVICE_CARGO_ENV = \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS="--target=$(RUSTC_TARGET_NAME) --sysroot=$(STAGING_DIR)" \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	CARGO_PROFILE_RELEASE_LTO=true \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=s
CAMERA_SERVICE_CARGO_BUILD_OPTS = -p camera-service

define CAMERA_SERVICE_INSTALL_CONFIG
	$(INSTALL) -D -m 0640 $(@D)/docs/config.example.toml \
		$(TARGET_DIR)/etc/camera-service/config.toml
	$(INSTALL) -D -m 0644 $(@D)/systemd/mediamtx.yml \
		$(TARGET_DIR)/usr/share/camera-service/mediamtx.yml
	$(INSTALL) -D -m 0644 $(@D)/systemd/mediamtx.service \
		$(TARGET_DIR)/usr/share/camera-service/mediamtx.service
endef
CAMERA_SERVICE_POST_INSTALL_TARGET_HOOKS += CAMERA_SERVICE_INSTALL_CONFIG

define CAMERA_SERVICE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/camera-service.service \
		$(TARGET_DIR)/usr/lib/systemd/system/camera-service.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/camera-service.preset \
		$(TARGET_DIR)/usr/lib/systemd/system-preset/50-camera-service.preset
	$(INSTALL) -D -m 0644 $(@D)/systemd/99-camera-service.rules \
		$(TARGET_DIR)/usr/lib/udev/rules.d/99-camera-service.rules
	$(INSTALL) -D -m 0644 $(@D)/systemd/camera-service.tmpfiles.conf \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/camera-service.conf
endef

# makeusers(7) line: user, uid, group, gid, password, home, shell, groups, comment.
define CAMERA_SERVICE_USERS
	camera-service -1 camera-service -1 * /var/lib/camera-service - video camera-service daemon
endef

define CAMERA_SERVICE_PERMISSIONS
	/etc/camera-service d 0750 0 camera-service - - - - -
	/etc/camera-service/config.toml f 0640 0 camera-service - - - - -
endef

$(eval $(cargo-package))
