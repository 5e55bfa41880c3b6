"""Drives chronusd with python-osc, a client written elsewhere.

usage: python_osc_client.py udp|tcp1.0|tcp1.1 PORT VALUE
Sends /mod/voice1/freq VALUE as a message and /mod/voice2/freq VALUE+100 in a bundle
timetagged 200 ms ahead; over TCP also asks /chronus/status and prints the reply's key count.
"""
import sys
import time

from pythonosc import osc_bundle_builder, osc_message_builder, tcp_client, udp_client


def message(address, *args):
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build()


transport, port, value = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
bundle = osc_bundle_builder.OscBundleBuilder(time.time() + 0.2)
bundle.add_content(message("/mod/voice2/freq", value + 100.0))
bundle = bundle.build()

if transport == "udp":
    client = udp_client.UDPClient("127.0.0.1", port)
    client.send(message("/mod/voice1/freq", value))
    client.send(bundle)
    print("sent")
else:
    client = tcp_client.SimpleTCPClient("127.0.0.1", port, mode=transport[3:], timeout=5)
    client.send(message("/mod/voice1/freq", value))
    client.send(bundle)
    client.send(message("/chronus/status"))
    for reply in client.get_messages(5):
        if reply.address == "/chronus/status.reply":
            print(f"status {len(reply.params) // 2}")
            break
    client.close()
