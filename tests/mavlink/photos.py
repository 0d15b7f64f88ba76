#!/usr/bin/env python3
"""Photos through pymavlink, an implementation independent of the crate the service ships.

Plays a vehicle (system 7: HEARTBEAT, GLOBAL_POSITION_INT, ATTITUDE) and a GCS (255/190)
against the service's udpin endpoint, then:
  1. IMAGE_START_CAPTURE interval 1 s, count 3 -> collects CAMERA_IMAGE_CAPTURED;
  2. IMAGE_START_CAPTURE interval 1 s, count 0 (until stopped), STOP after two images ->
     nothing may arrive after the STOP's COMMAND_ACK.
Every file_url is downloaded (bearer token) and its EXIF GPS tags read with exifread.
Prints one JSON document on stdout; run by tests/mavlink_e2e.rs.
Usage: photos.py PORT TOKEN LAT_E7 LON_E7 ALT_MM
"""
import io
import json
import os
import sys
import threading
import time
import urllib.request

os.environ["MAVLINK20"] = "1"
from pymavlink import mavutil  # noqa: E402
from pymavlink.dialects.v20 import common as mav  # noqa: E402
import exifread  # noqa: E402

port, token = int(sys.argv[1]), sys.argv[2]
lat, lon, alt = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
VEHICLE, CAM = 7, 100

conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=VEHICLE, source_component=1, dialect="common")
lock = threading.Lock()
stop = threading.Event()


def as_(sysid, compid, fn):
    with lock:
        conn.mav.srcSystem, conn.mav.srcComponent = sysid, compid
        fn()


def vehicle():
    t0 = time.time()
    while not stop.is_set():
        boot = int((time.time() - t0) * 1000)
        as_(VEHICLE, 1, lambda: conn.mav.heartbeat_send(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4, 0, 0, mav.MAV_STATE_ACTIVE))
        as_(VEHICLE, 1, lambda: conn.mav.global_position_int_send(boot, lat, lon, alt, 25000, 0, 0, 0, 9000))
        as_(VEHICLE, 1, lambda: conn.mav.attitude_send(boot, 0.0, 0.0, 1.5708, 0.0, 0.0, 0.0))
        as_(255, 190, lambda: conn.mav.heartbeat_send(mav.MAV_TYPE_GCS, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE))
        time.sleep(0.3)


threading.Thread(target=vehicle, daemon=True).start()


def recv(timeout):
    return conn.recv_match(blocking=True, timeout=timeout)


def wait(pred, timeout, sink=None):
    end = time.time() + timeout
    while time.time() < end:
        m = recv(max(0.05, end - time.time()))
        if m is None:
            continue
        if sink is not None:
            sink.append(m)
        if pred(m):
            return m
    return None


def from_cam(m):
    return m.get_srcSystem() == VEHICLE and m.get_srcComponent() == CAM


def command(cmd, *p):
    p = list(p) + [0.0] * (7 - len(p))
    as_(255, 190, lambda: conn.mav.command_long_send(VEHICLE, CAM, cmd, 0, *p))


def ack_of(cmd, sink):
    m = wait(lambda m: m.get_type() == "COMMAND_ACK" and from_cam(m) and m.command == cmd, 15, sink)
    return None if m is None else m.result


out = {}
hb = wait(lambda m: m.get_type() == "HEARTBEAT" and from_cam(m), 20)
out["camera_heartbeat"] = hb is not None and hb.type == mav.MAV_TYPE_CAMERA
time.sleep(1.0)  # the vehicle position reaches the service

# 1. three images, one second apart
seen = []
command(mav.MAV_CMD_IMAGE_START_CAPTURE, 0, 1.0, 3, 0)
out["start_ack"] = ack_of(mav.MAV_CMD_IMAGE_START_CAPTURE, seen)
images = [m for m in seen if m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m)]
t_first = None
while len(images) < 3:
    m = wait(lambda m: m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m), 30)
    if m is None:
        break
    images.append(m)
# anything more (there must be nothing: the count was 3)
extra = []
wait(lambda m: False, 3.0, extra)
out["extra_after_count"] = sum(1 for m in extra if m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m))
out["stop_ack_idle"] = None
command(mav.MAV_CMD_IMAGE_STOP_CAPTURE)
out["stop_ack_idle"] = ack_of(mav.MAV_CMD_IMAGE_STOP_CAPTURE, [])


def describe(m):
    url = m.file_url.rstrip("\x00") if isinstance(m.file_url, str) else bytes(m.file_url).rstrip(b"\x00").decode()
    d = {
        "index": m.image_index,
        "result": m.capture_result,
        "lat": m.lat,
        "lon": m.lon,
        "alt": m.alt,
        "relative_alt": m.relative_alt,
        "time_utc": m.time_utc,
        "q": list(m.q),
        "file_url": url,
    }
    try:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        body = urllib.request.urlopen(req, timeout=10).read()
        d["bytes"] = len(body)
        d["jpeg"] = body[:2] == b"\xff\xd8"
        tags = exifread.process_file(io.BytesIO(body), details=False)

        def deg(key, ref):
            v = tags.get(key)
            if v is None:
                return None
            dd, mm, ss = [float(x.num) / float(x.den) for x in v.values]
            sign = -1 if str(tags.get(ref)) in ("S", "W") else 1
            return sign * (dd + mm / 60 + ss / 3600)

        d["exif_lat"] = deg("GPS GPSLatitude", "GPS GPSLatitudeRef")
        d["exif_lon"] = deg("GPS GPSLongitude", "GPS GPSLongitudeRef")
        a = tags.get("GPS GPSAltitude")
        d["exif_alt"] = None if a is None else float(a.values[0].num) / float(a.values[0].den)
    except Exception as e:  # reported, the Rust side fails on it
        d["download_error"] = repr(e)
    return d


out["images"] = [describe(m) for m in images]
out["times"] = [m.time_utc for m in images]

# 2. until stopped: STOP after two images; nothing after the STOP's ACK
seen = []
command(mav.MAV_CMD_IMAGE_START_CAPTURE, 0, 1.0, 0, 0)
out["endless_ack"] = ack_of(mav.MAV_CMD_IMAGE_START_CAPTURE, seen)
got = [m for m in seen if m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m)]
while len(got) < 2:
    m = wait(lambda m: m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m), 30)
    if m is None:
        break
    got.append(m)
seen = []
command(mav.MAV_CMD_IMAGE_STOP_CAPTURE)
out["stop_ack"] = ack_of(mav.MAV_CMD_IMAGE_STOP_CAPTURE, seen)
before_ack = [m for m in seen if m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m)]
after = []
wait(lambda m: False, 3.5, after)
out["endless_indices"] = [m.image_index for m in got + before_ack]
out["after_stop"] = sum(1 for m in after if m.get_type() == "CAMERA_IMAGE_CAPTURED" and from_cam(m))

# busy: a photo while an interval capture runs is temporarily rejected
command(mav.MAV_CMD_IMAGE_START_CAPTURE, 0, 5.0, 0, 0)
out["busy_first"] = ack_of(mav.MAV_CMD_IMAGE_START_CAPTURE, [])
command(mav.MAV_CMD_IMAGE_START_CAPTURE, 0, 0, 1, 0)
out["busy_second"] = ack_of(mav.MAV_CMD_IMAGE_START_CAPTURE, [])
command(mav.MAV_CMD_IMAGE_STOP_CAPTURE)
out["busy_stop"] = ack_of(mav.MAV_CMD_IMAGE_STOP_CAPTURE, [])

stop.set()
print(json.dumps(out))
