"""The challenge's own routes under `/.cg/`: the page, the answer POST, item media.

The page shows every slot the same way (controls and unknowns alike) and media goes through
`/.cg/m/{challenge}/{slot}`, so neither the HTML nor a URL says which item is the control or
what any item's id is."""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from asg_challenge import tokens
from asg_challenge.context import Client, client_of, observe, pass_cookie, sid_cookie
from asg_challenge.domain import safe_redirect
from asg_challenge.errors import NotFound, PayloadTooLarge, TooManyRequests
from asg_challenge.gateway import Gateway, Session

MAX_ANSWER_BODY = 16 * 1024
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>A quick check</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
fieldset{{margin:1rem 0;border:1px solid #ccc;border-radius:6px}}img{{max-width:100%}}
.note{{color:#a33}}</style></head>
<body><h1>A quick check</h1><p>Answer each question to continue to the site.</p>{note}
<form method="post" action="/.cg/answer" id="cg-form">
<input type="hidden" name="challenge_id" value="{cid}"><input type="hidden" name="redir" value="{redir}">
{slots}<button type="submit" id="cg-submit">Continue</button></form></body></html>
"""


def render(cid: str, slots: list[dict[str, Any]], redir: str, note: str = "") -> str:
    parts = []
    for i, slot in enumerate(slots):
        body = f'<p class="cg-text">{html.escape(slot["text"])}</p>' if slot.get("text") else ""
        if slot.get("media"):
            body += f'<img src="/.cg/m/{cid}/{i}" alt="item {i + 1}">'
        choices = "".join(
            f'<label><input type="radio" name="a{i}" value="{html.escape(o)}" required> '
            f"{html.escape(o)}</label> "
            for o in slot["options"]
        )
        parts.append(
            f'<fieldset class="cg-item" data-slot="{i}"><legend>{html.escape(slot["question"])}</legend>'
            f"{body}<div>{choices}</div></fieldset>"
        )
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return PAGE.format(cid=cid, redir=html.escape(redir), slots="\n".join(parts), note=note_html)


def page_response(
    gw: Gateway, c: Client, s: Session, redir: str, *, status: int = 200, note: str = ""
) -> Response:
    """A fresh challenge for `c`: its page for a navigation, else the JSON 403."""
    if not c.navigation and status == 200:
        resp: Response = JSONResponse({"error": "challenge_required"}, status_code=403)
        gw.refuse_api_call(s)  # counted as a challenge issued (docs/challenge.md, Dashboard)
    else:
        cid, slots = gw.issue(s, c.key, safe_redirect(redir))
        resp = HTMLResponse(render(cid, slots, safe_redirect(redir), note), status_code=status)
    resp.headers["Cache-Control"] = "no-store"
    if c.new_sid:
        resp.headers.append("Set-Cookie", sid_cookie(gw, c))
    return resp


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _own_request(request: Request) -> tuple[Gateway, Client, Session]:
    """A request to the gateway's own challenge routes: it updates the session's header
    signals only (not its site traffic) and is answered as a navigation (the page)."""
    gw = _gw(request)
    c = client_of(request, gw)
    now = time.time()
    s = gw.session(c.sid, now)
    observe(request, c, s, now, site=False)
    c.navigation = True
    return gw, c, s


async def challenge_page(request: Request) -> Response:
    """GET /.cg/challenge?redir=/path: a challenge on demand (any client, navigation or not)."""
    gw, c, s = _own_request(request)
    return page_response(gw, c, s, request.query_params.get("redir", "/"))


async def answer(request: Request) -> Response:
    """POST /.cg/answer (form): pass → 303 to `redir` with the pass cookie; otherwise a new
    challenge (403), or 429 with Retry-After after too many failures."""
    gw, c, s = _own_request(request)
    body = await request.body()
    if len(body) > MAX_ANSWER_BODY:
        raise PayloadTooLarge(f"an answer is at most {MAX_ANSWER_BODY} bytes")
    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    answers = {int(k[1:]): v for k, v in form.items() if k.startswith("a") and k[1:].isdigit() and len(k) < 4}
    out = gw.answer(form.get("challenge_id", ""), answers, s=s, net=c.net, key_id=c.key_id)
    if out.kind == "passed":
        ttl = gw.config.challenge_token_ttl
        token = tokens.issue_pass(
            gw.secret, sid=c.sid, key_id=c.key_id, host=c.host, ua=c.ua, net=c.net, cid=out.cid, ttl=ttl
        )
        resp = Response(
            status_code=303, headers={"Location": safe_redirect(out.redir), "Cache-Control": "no-store"}
        )
        resp.headers.append("Set-Cookie", pass_cookie(token, ttl, c.https))
        if c.new_sid:
            resp.headers.append("Set-Cookie", sid_cookie(gw, c))
        return resp
    if out.kind == "cooldown":
        raise TooManyRequests(f"too many failed challenges: retry after {out.retry_after} s", out.retry_after)
    note = (
        "That was not right. Please try again."
        if out.kind == "failed"
        else ("That check expired or was already used. Here is a new one.")
    )
    return page_response(gw, c, s, form.get("redir", out.redir), status=403, note=note)


async def media(request: Request) -> Response:
    """An item's image, by its slot in a live challenge of this session only."""
    gw = _gw(request)
    c = client_of(request, gw)
    ch = gw.store.challenge(request.path_params["cid"])
    slot = request.path_params["slot"]
    if ch is None or ch["sid"] != c.sid or ch["spent"] or not 0 <= slot < len(ch["slots"]):
        raise NotFound("no such challenge media")
    item_id = ch["slots"][slot].get("item_id")
    found = gw.store.item_media(item_id) if item_id else None
    if found is None:
        raise NotFound("no such challenge media")
    data, media_type = found
    return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        Route("/.cg/challenge", challenge_page, methods=["GET"]),
        Route("/.cg/answer", answer, methods=["POST"]),
        Route("/.cg/m/{cid}/{slot:int}", media, methods=["GET"]),
    ]
