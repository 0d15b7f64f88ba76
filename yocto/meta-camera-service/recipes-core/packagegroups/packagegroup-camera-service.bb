SUMMARY = "camera-service and its runtime companions"
DESCRIPTION = "Add to an image with IMAGE_INSTALL:append = \" packagegroup-camera-service\"."
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "camera-service ffmpeg v4l-utils"
RRECOMMENDS:${PN} = "mediamtx"
