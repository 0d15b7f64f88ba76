include $(sort $(wildcard $(BR2_EXTERNAL_CAMERA_SERVICE_PATH)/package/*/*.mk))
