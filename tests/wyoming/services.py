#!/usr/bin/env python3
"""Wyoming services for the tests and the bench, built on the official `wyoming`
package (PyPI) the way wyoming-piper, wyoming-faster-whisper and
wyoming-openwakeword are: an AsyncServer on a tcp:// or unix:// address and one
event handler per connection.

  services.py tts  --uri tcp://127.0.0.1:PORT              espeak-ng
  services.py asr  --uri ... [--grammar F] [--delay-s S]  pocketsphinx
  services.py wake --uri ... --grammar F --wake-word NAME=PHRASE

tts streams espeak-ng's output as it is synthesised: one audio-chunk per read of
its stdout, so the first chunk leaves before the utterance is done. A text that
contains "[hang]" is never answered (for tests that kill a service mid-request);
with --hold-until FILE the last chunk and audio-stop wait until FILE exists.
asr collects each utterance (transcribe, audio-start, audio-chunk..., audio-stop)
and runs pocketsphinx_continuous over it; --delay-s holds every answer back.
wake feeds the audio after detect/audio-start to one pocketsphinx_continuous per
session as it arrives and sends `detection` when an utterance it recognises is a
wake word's phrase.
"""

import argparse
import array
import asyncio
import random
import logging
import os
import time
from functools import partial

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection

LOG = logging.getLogger("services")
ATTRIBUTION = Attribution(name="chronus tests", url="")
RATE = 16000


def pocketsphinx(grammar):
    argv = ["pocketsphinx_continuous", "-infile", "/dev/stdin", "-logfn", "/dev/null"]
    if grammar:
        argv += ["-jsgf", grammar]
    return argv


DITHER = random.Random(0)


def dithered(pcm):
    """A noise floor of a few LSB: pocketsphinx's voice detector stalls on the exact
    digital silence a null sink's monitor carries (a microphone never sends it)."""
    samples = array.array("h", pcm)
    for i, x in enumerate(samples):
        samples[i] = max(-32768, min(32767, x + DITHER.randint(-8, 8)))
    return samples.tobytes()


def info(args):
    if args.kind == "tts":
        voices = [
            TtsVoice(name=v, attribution=ATTRIBUTION, installed=True, description=None,
                     version=None, languages=[v])
            for v in ("en", "en-us", "de")
        ]
        return Info(tts=[TtsProgram(name="espeak-ng", attribution=ATTRIBUTION, installed=True,
                                    description="espeak-ng", version=None, voices=voices)])
    if args.kind == "asr":
        model = AsrModel(name="pocketsphinx-en-us", attribution=ATTRIBUTION, installed=True,
                         description=None, version=None, languages=["en"])
        return Info(asr=[AsrProgram(name="pocketsphinx", attribution=ATTRIBUTION, installed=True,
                                    description="pocketsphinx", version=None, models=[model])])
    models = [
        WakeModel(name=name, attribution=ATTRIBUTION, installed=True, description=None,
                  version=None, languages=["en"], phrase=phrase)
        for name, phrase in args.wake_words
    ]
    return Info(wake=[WakeProgram(name="pocketsphinx-wake", attribution=ATTRIBUTION,
                                  installed=True, description=None, version=None, models=models)])


class Handler(AsyncEventHandler):
    def __init__(self, args, *rest):
        super().__init__(*rest)
        self.args = args
        self.converter = AudioChunkConverter(rate=RATE, width=2, channels=1)
        self.audio = None
        self.wake = None

    async def handle_event(self, event):
        if Describe.is_type(event.type):
            await self.write_event(info(self.args).event())
        elif Synthesize.is_type(event.type) and self.args.kind == "tts":
            await self.synthesize(Synthesize.from_event(event))
        elif Transcribe.is_type(event.type) and self.args.kind == "asr":
            self.audio = bytearray()
        elif Detect.is_type(event.type) and self.args.kind == "wake":
            await self.start_wake(Detect.from_event(event).names)
        elif AudioStart.is_type(event.type):
            pass
        elif AudioChunk.is_type(event.type):
            pcm = dithered(self.converter.convert(AudioChunk.from_event(event)).audio)
            if self.audio is not None:
                self.audio.extend(pcm)
            if self.wake is not None and self.wake.returncode is None:
                self.wake.stdin.write(pcm)
                await self.wake.stdin.drain()
        elif AudioStop.is_type(event.type):
            if self.audio is not None:
                await self.transcribe(bytes(self.audio))
                self.audio = None
            await self.stop_wake()
        return True

    async def synthesize(self, request):
        if "[hang]" in request.text:
            await asyncio.sleep(3600)
        voice = request.voice.name if request.voice and request.voice.name else "en"
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "--stdout", "-v", voice, request.text,
            stdout=asyncio.subprocess.PIPE)
        # espeak-ng writes a 44-byte WAV header with an open-ended length.
        header = await proc.stdout.readexactly(44)
        rate = int.from_bytes(header[24:28], "little")
        await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
        odd = b""
        held = None
        early = []
        while True:
            data = await proc.stdout.read(4096)
            if not data:
                break
            data = odd + data
            cut = len(data) - len(data) % 2
            data, odd = data[:cut], data[cut:]
            if held is not None:
                if self.args.hold_until:
                    # Synthesised whole first, so that only the held chunk can come
                    # late, however slowly espeak-ng runs on a busy machine.
                    early.append(held)
                else:
                    await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=held).event())
            held = data
        await proc.wait()
        for chunk in early:
            await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=chunk).event())
        if self.args.hold_until:
            LOG.info("holding the last chunk until %s exists", self.args.hold_until)
            while not os.path.exists(self.args.hold_until):
                await asyncio.sleep(0.02)
        if held:
            await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=held).event())
        await self.write_event(AudioStop().event())
        LOG.info("audio-stop sent")

    async def transcribe(self, pcm):
        if self.args.delay_s:
            await asyncio.sleep(self.args.delay_s)
        proc = await asyncio.create_subprocess_exec(
            *pocketsphinx(self.args.grammar),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate(pcm)
        if proc.returncode != 0:
            await self.write_event(Error(text=f"pocketsphinx exited with {proc.returncode}").event())
            return
        text = " ".join(line.strip() for line in out.decode(errors="replace").splitlines() if line.strip())
        LOG.info("transcript %r of %.2f s", text, len(pcm) / 2 / RATE)
        await self.write_event(Transcript(text=text).event())

    async def start_wake(self, names):
        await self.stop_wake()
        words = [(n, p) for n, p in self.args.wake_words if not names or n in names]
        self.wake = await asyncio.create_subprocess_exec(
            *pocketsphinx(self.args.grammar),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        asyncio.create_task(self.detections(self.wake, words, time.monotonic()))

    async def detections(self, proc, words, started):
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            heard = line.decode(errors="replace").strip()
            for name, phrase in words:
                if phrase in heard and proc is self.wake:
                    LOG.info("detected %s in %r", name, heard)
                    ms = int((time.monotonic() - started) * 1000)
                    await self.write_event(Detection(name=name, timestamp=ms).event())

    async def stop_wake(self):
        proc, self.wake = self.wake, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def disconnect(self):
        await self.stop_wake()


def wake_word(text):
    name, _, phrase = text.partition("=")
    if not name or not phrase:
        raise argparse.ArgumentTypeError("expected NAME=PHRASE")
    return name, phrase


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["tts", "asr", "wake"])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--grammar")
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--hold-until")
    parser.add_argument("--wake-word", dest="wake_words", type=wake_word, action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    server = AsyncServer.from_uri(args.uri)
    LOG.info("%s service on %s", args.kind, args.uri)
    await server.run(partial(Handler, args))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
