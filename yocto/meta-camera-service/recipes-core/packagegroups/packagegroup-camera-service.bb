SUMMARY = "camera-service and its runtime companions"
DESCRIPTION = "Add to an image with IMAGE_INSTALL:append = \" packagegroup-camera-service\"."
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "camera-service ffmpeg"
# v4l-utils (v4l2-ctl, for diagnosing cameras) is in meta-oe; mediamtx needs a recipe of
# your own. Both are only recommended, so the group builds without them.
RRECOMMENDS:${PN} = "mediamtx v4l-utils"
