import socket, time
def conn():
    s = socket.create_connection(("127.0.0.1", 19910)); s.settimeout(0.6); return s
def talk(s, data):
    if isinstance(data, str): data = data.encode()
    s.sendall(data); out = b""
    try:
        while True:
            c = s.recv(65536)
            if not c: out += b"<EOF>"; break
            out += c
    except socket.timeout: pass
    except OSError as e: out += f"<{e}>".encode()
    return out.decode(errors="replace")
def case(name, *lines, login=True):
    s = conn()
    r = []
    if login: r.append(talk(s, "LOGIN trader secret TR1234\r\n"))
    for l in lines: r.append(talk(s, l))
    print("==", name); [print("  ", repr(x)) for x in r]; s.close()
case("5-field login watch", login=False, *["LOGIN trader secret TR1234 1\r\n"])
case("5-field login junk", login=False, *["LOGIN trader secret TR1234 x\r\n"])
case("lower login", login=False, *["login trader secret TR1234\r\n"])
case("garbage before login", login=False, *["hello\r\n"])
case("gets", "GET POSITIONS\r\n", "GET ORDERS\r\n", "GET TRADES\r\n", "GET BP\r\n", "GET  BP\r\n", "get bp\r\n")
case("cancelall empty", "CANCELALL\r\n", "CANCEL 999\r\n")
case("echo", "ECHO ON\r\n", "GET BP\r\n", "ECHO OFF\r\n", "GET BP\r\n")
case("garbage", "xyzzy\r\n", "\r\n", "   \r\n", "NEWORDER\r\n")
case("nonascii", b"\xff\xfe\r\n", "GET BP\r\n")
case("quit then order", "QUIT\r\nNEWORDER 5 B QQQQ SMAT 100 1.00 TIF=DAY\r\n")
s=conn(); print("== after: positions", talk(s, "LOGIN trader secret TR1234\r\n"))
