"""The call engine: `pipeline` (input policies -> recorder -> router -> output policies) and `router` (alias ->
deployments, retries, cooldowns, fallbacks).

The life of a stream. The adapter's generator (for the remote ones, adapters/http.py's `stream_sse` around the
adapter's translation) sends the request, maps an error status, reads the events with bounds and the total deadline,
and ends normally only on the upstream's own end marker (`[DONE]`, `message_stop`, llama.cpp's end of generation):
a cut stream raises `UpstreamIncomplete`, never a quiet end. It is primed twice. The router primes it first, awaiting
the first chunk inside its retry loop (within `first_token`), because only before that chunk can it still fail over
to another deployment or fallback; after it, a failure ends the stream and counts against the deployment's health.
The server primes the pipeline's stream once more, before it answers 200, so that an error raised by the recorder
or the policies up to the first chunk is still an HTTP error and not an error event. Between them the recorder
relays the chunks and stores the recording only when the stream ended normally; the pipeline's filter accounts
usage, passes each chunk through the output policies (which may hold back, cut or rewrite) and settles them at the
end, or, when the stream broke, charges the tokens relayed so far and settles them anyway. The server's framer
frames each chunk in the client's protocol, and a failure after the first byte as the wire's error frame (no
`[DONE]`; Responses' `response.failed`). Every layer that owns an inner stream closes it with
`contextlib.aclosing`, so a client that goes away closes the upstream connection at once.

Two kinds of item flow this way: chunks (dicts) and Frames (vocab/types.py: whole SSE events as the upstream framed
them, one upstream read's worth, with the usage they carried). The pipeline sets `Call.frames` when the server's
framer takes Frames (OpenAI's own wire) and no policy `reads_chunks` for this call; the OpenAI adapter then relays
(adapters/http.py `relay_sse`, adapters/openai_frames.py) and a replay yields one Frames of every recorded event,
while recording asks for chunks again. Every layer passes Frames on untouched: the pipeline takes their usage (and
lets a policy's `on_frames` drop the usage event it asked for), the router and the framer relay them.
"""
