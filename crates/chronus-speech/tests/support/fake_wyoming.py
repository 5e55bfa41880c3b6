# A scripted Wyoming engine for fault tests. Behaviour is chosen by the request text:
#   "crash"    audio-start, then exit 1 mid-reply
#   "garbage"  a line of invalid JSON
#   "partial"  half a header, then hang with stdout open
#   "hang"     never answer
#   "late"     answer after 1.5 s (after the test's timeout)
#   "error"    an error event, then exit 0   (error-then-exit: not a crash)
#   "soft"     an error event, and stay up
#   "split"    the reply one byte at a time
#   otherwise  audio whose samples are the text's bytes times 100, at 22050 Hz
#   "truncated" half a header, then exit
# Options: --slow-start SECONDS, --exit-at-once, --exit-at-once-if FILE,
#   --info-once (answer only the first describe), --stubborn (ignore SIGTERM and end
#   of input).
import json, os, signal, sys, time

args = sys.argv[1:]
if "--exit-at-once" in args:
    sys.exit(2)
if "--exit-at-once-if" in args and os.path.exists(args[args.index("--exit-at-once-if") + 1]):
    sys.exit(2)
if "--slow-start" in args:
    time.sleep(float(args[args.index("--slow-start") + 1]))
if "--stubborn" in args:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
info_once = "--info-once" in args
describes = 0
inp, out = sys.stdin.buffer, sys.stdout.buffer

def event(kind, data=None, payload=b""):
    header = {"type": kind}
    body = b""
    if data is not None:
        body = json.dumps(data).encode()
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload

def read_event():
    line = inp.readline()
    if not line:
        return None
    header = json.loads(line)
    data = header.get("data") or {}
    n = header.get("data_length") or 0
    if n:
        data.update(json.loads(inp.read(n)))
    m = header.get("payload_length") or 0
    payload = inp.read(m) if m else b""
    return header["type"], data, payload

def send(b):
    out.write(b)
    out.flush()

def audio_reply(text):
    fmt = {"rate": 22050, "width": 2, "channels": 1}
    pcm = b"".join((c * 100).to_bytes(2, "little", signed=True) for c in text.encode())
    return event("audio-start", fmt) + event("audio-chunk", fmt, pcm) + event("audio-stop", {})

sys.stderr.write("fake engine %d ready\n" % os.getpid())
sys.stderr.flush()
samples = 0
while True:
    ev = read_event()
    if ev is None:
        if "--stubborn" in args:
            while True:
                time.sleep(1)
        break
    kind, data, payload = ev
    if kind == "describe":
        describes += 1
        if not info_once or describes == 1:
            send(event("info", {"tts": [{"name": "fake", "voices": [{"name": "v1"}]}]}))
    elif kind == "synthesize":
        text = data.get("text", "")
        if text == "crash":
            send(event("audio-start", {"rate": 22050, "width": 2, "channels": 1}))
            os._exit(1)
        elif text == "garbage":
            send(b"\x00\x01 this is not json {{{\n")
        elif text == "partial":
            send(b'{"type": "audio-st')
        elif text == "truncated":
            send(b'{"type": "audio-st')
            sys.exit(0)
        elif text == "hang":
            pass
        elif text == "late":
            time.sleep(1.5)
            send(audio_reply("late"))
        elif text == "error":
            send(event("error", {"text": "voice not found"}))
            sys.exit(0)
        elif text == "soft":
            send(event("error", {"text": "cannot say that"}))
        elif text == "split":
            for b in audio_reply(text):
                send(bytes([b]))
        else:
            voice = (data.get("voice") or {}).get("name", "")
            send(audio_reply(text + voice))
    elif kind == "transcribe":
        samples = 0
    elif kind == "audio-chunk":
        samples += len(payload) // 2
    elif kind == "audio-stop":
        send(event("transcript", {"text": "%d samples" % samples}))
