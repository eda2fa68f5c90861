"""The query a booking URL keeps: what the booking page needs (currency, dates, guests, a
language), never what names a campaign, a click, a person or a secret.

The workbook is read by the sales team and may be published, and a crawled URL can carry a
visitor's form fields, a session, a password or an API key. So a parameter is dropped when
its name is a tracking parameter (`_TRACKING`, by prefix), when its name holds a word of a
person's data or a secret (`_PERSONAL_STEMS` anywhere in the name written without separators,
`_PERSONAL_WORDS` as one of its words: `guestEmail`, `hotel_email`, `api_key`, `fname`,
`telefono`, `customer_id`), or when its value holds an e-mail address (`e=a@b.c`, `q=a%40b.c`)
or is a card or phone number (`x=4111111111111111`, `x=%2B61%20412%20345%20678`).
Dropping a parameter the page could use costs a prefilled form at worst; keeping a person's
data publishes it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote

# Tracking parameters: they name the campaign or the click, not the page. Google (utm_*, _ga,
# _gl, gclid, gclsrc, dclid, wbraid, gbraid, srsltid, and Google Ads' gad_source,
# gad_campaignid), Microsoft (msclkid), Meta (fbclid, igshid), Mailchimp (mc_cid, mc_eid),
# Yandex (yclid), HubSpot (_hsenc, _hsmi, __hstc, __hssc, __hsfp), X (twclid), LinkedIn
# (li_fat_id), TikTok (ttclid), Marketo (mkt_tok), Klaviyo (_kx), Olytics (oly_anon_id,
# oly_enc_id), Vero (vero_id), Adobe (s_kwcid, ef_id), Pinterest (epik), affiliate networks
# (irclickid, aff_id, rb_clickid).
_TRACKING = (
    "utm_", "_ga=", "_gl=", "gclid=", "gclsrc=", "dclid=", "wbraid=", "gbraid=", "srsltid=",
    "msclkid=", "fbclid=", "igshid=", "mc_cid=", "mc_eid=", "yclid=", "_hsenc=", "_hsmi=",
    "__hstc=", "__hssc=", "__hsfp=", "twclid=", "li_fat_id=", "ttclid=", "mkt_tok=", "_kx=",
    "oly_anon_id=", "oly_enc_id=", "vero_id=", "gad_source=", "gad_campaignid=", "hsa_",
    "s_kwcid=", "ef_id=", "epik=", "irclickid=", "rb_clickid=",
)  # fmt: skip
# Words of a person's data or a secret, found anywhere in a parameter's name written without
# separators and in lower case (`guestEmail` -> `guestemail`): English, Spanish and Portuguese.
_PERSONAL_STEMS = (
    "mail", "phone", "mobile", "passw", "pwd", "secret", "token", "apikey", "session",
    "passport", "birth", "address", "firstname", "lastname", "fullname", "surname",
    "username", "userid", "customer", "login", "confirmation", "bookingid", "reservationid",
    "creditcard", "cardnumber", "cvv", "iban", "affiliate", "clickid", "campaign", "correo",
    "telefono", "movil", "celular", "nombre", "apellido", "direccion", "endereco", "senha",
    "card", "courriel", "sobrenome", "vorname", "nachname", "strasse", "prenom", "whatsapp",
    "member", "signature", "nonce", "refresh", "partner", "clickref", "cjevent", "ranmid",
    "ransiteid", "irgwc", "subid", "tarjeta", "cvc", "expiry", "codicefiscale", "telefon",
    "handy", "adresse", "geburtsdatum", "latitude", "longitude", "hmac", "sscid", "rfsn",
)  # fmt: skip
# Whole words of a name that are a person's data, a secret or a click (`tel`, never `hotel`).
_PERSONAL_WORDS = frozenset((
    "name", "fname", "lname", "guest", "contact", "tel", "dob", "ssn", "key", "auth", "sid",
    "uid", "code", "pin", "ref", "referrer", "aff", "cid", "phpsessid", "jsessionid",
    "aspsessionid", "cc", "exp", "nome", "nom", "pass", "wa", "user", "conf", "zip", "age",
    "ip", "lat", "lng", "lon", "geo", "otp", "state", "hash", "sig", "awc", "jwt", "cpf", "dni",
    "cell", "fax", "plz", "cap", "cep",
))  # fmt: skip
_AT_SIGNS = ("@", "\uff20", "(at)", "[at]")  # `@`, a fullwidth one, the spelled-out forms
_CARD_OR_PHONE = re.compile(r"\+?(?:\d[ .()-]?){8,18}\d")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # camelCase: `guestEmail`
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def kept_query(query: str) -> str:
    """The parameters of `query` (without its `?`) a booking URL keeps, in their order: no
    tracking, personal or secret one (see the module docstring), none empty (`?x=` cut by
    extraction), and printable ASCII only."""
    return "&".join(p for p in query.split("&") if p and _kept(p))


@lru_cache(maxsize=8192)  # the same few parameters recur all through a crawl file
def _kept(parameter: str) -> bool:
    if not (parameter.isascii() and parameter.isprintable()) or " " in parameter:
        return False
    if parameter[-1] == "=" or parameter.lower().startswith(_TRACKING):
        return False
    name, _, value = parameter.partition("=")
    for _ in range(5):  # encoded again by each redirect: `%2540`, `%25252540`
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    value = value.lower()
    if any(sign in value for sign in _AT_SIGNS) or (" at " in value and " dot " in value):
        return False  # an e-mail address, whatever the parameter is called
    if _CARD_OR_PHONE.fullmatch(value):
        return False  # a card or phone number (9 to 19 digits, maybe grouped, maybe `+`)
    words = _NOT_ALNUM.split(_WORD_BREAK.sub("_", unquote(name)).lower())
    squashed = "".join(words)
    return not (
        any(stem in squashed for stem in _PERSONAL_STEMS) or _PERSONAL_WORDS.intersection(words)
    )
