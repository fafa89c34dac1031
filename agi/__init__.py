"""FastAGI: callshield's dialplan-only alternative to ARI.

The dialplan runs ``AGI(agi://HOST:4573/callshield/gate,${EXTEN},company,campaign)``; the handler
for ``callshield/gate`` decides, sets ``SHIELD_RESULT``, ``SHIELD_REASON`` and ``SHIELD_UNTIL``,
and returns; the server closes the socket at once (Asterisk keeps the channel until then, and
continues the dialplan with ``AGISTATUS=SUCCESS`` after).

Modules: :mod:`~callshield.agi.protocol` (wire format, pure: replies, commands, and the header
block from :mod:`~callshield.agi.request`), :mod:`~callshield.agi.stream` (one connection's
reads, writes, deadlines and close), :mod:`~callshield.agi.deadlines` (one timer for the
deadlines of all connections), :mod:`~callshield.agi.session` (the commands of one session),
:mod:`~callshield.agi.server` (accept, route, limits, shutdown).

Why not panoramisk (1.4; read: ``panoramisk/fast_agi.py`` and ``panoramisk/utils.py``)? Its
FastAGI part is a few dozen lines, and none of it holds up against what Asterisk and hostile
peers send:

- the header loop appends ``reader.read(100)`` until it sees a blank line: after a half header
  and EOF ``read`` returns ``b""`` forever and the loop spins; a stalled peer holds its task
  forever (no timeout, no size limit); a header line without ``": "`` raises ValueError;
- at EOF ``readline`` returns ``b""``, ``parse_agi_result("")`` does ``int("")``: ValueError;
- a ``520-`` reply is read as its first line plus exactly one more, so the rest of a longer
  usage text is taken as the reply to the next command;
- a ``HANGUP`` notice is returned as the reply of the command in flight; the real reply then
  answers the next command, and every reply after it is off by one;
- ``result=-1`` or a ``(hangup)`` value replaces the parsed reply with an error dict;
- commands are sent unquoted and unchecked (a value with a newline injects a command), there is
  no reply timeout, and routing uses ``agi_network_script`` with its query string.

Its ``parse_agi_result`` (pure, wire examples in the docstring) has the right shape and this
package follows it, but the semantics above are wrong, so nothing is reused: the wire format is
written here and tested against the captured Asterisk 22 traffic.

Pipelining (for the gate: write three SET VARIABLE lines, then read three replies) is NOT used.
The capture never shows it, and res_agi's ``run_agi`` polls the socket and then reads one line
with ``fgets`` from a buffered stdio stream: the second and third command land in the stdio
buffer and Asterisk goes back to polling the socket, which stays silent, so they are not
answered until the server sends something else; the session would stall until its reply
timeout. So each command is one round trip (write, then read the reply: one await). The fake
Asterisk in ``tests/agi`` reproduces that stdio behaviour and a test shows the stall. (res_agi's
``run_agi`` has done this since its first versions: ``fdopen`` of the socket, ``setlinebuf``,
then per command ``ast_waitfor_nandfds`` on the descriptor and one ``fgets``.)
"""

from callshield.agi.protocol import AgiCommandError, AgiReply, AgiRequest
from callshield.agi.server import AgiServer, Handler
from callshield.agi.session import AgiSession

__all__ = ["AgiCommandError", "AgiReply", "AgiRequest", "AgiServer", "AgiSession", "Handler"]
