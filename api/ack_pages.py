"""The small HTML pages behind acknowledgement links (French or English, no script, no outside asset).

:func:`page` gives the page for a link's :class:`~vigie.alerts.acklinks.LinkState` and its HTTP
status: the confirmation form (200) for a valid link, thanks (200), alert already closed (409), and
for a used (410), expired (410) or invalid (400) link a page that names no alert.
"""

from __future__ import annotations

from html import escape

from vigie.alerts.acklinks import AlertType, LinkState

_TEXT = {
    "fr": {
        "title": "Vigie — alerte fuite d'eau",
        LinkState.VALID: ("Confirmez-vous que vous vous occupez de l'alerte n° {alert_id} ? "
                          "Vous ne recevrez plus de rappel pour cette alerte."),
        "button": "Je m'en occupe",
        LinkState.ACKNOWLEDGED: "Merci : l'alerte n° {alert_id} est prise en compte. Vous ne recevrez plus de rappel.",
        LinkState.RESOLVED: "L'alerte n° {alert_id} est déjà close : il n'y a plus rien à confirmer.",
        LinkState.USED: "Ce lien a déjà été utilisé. Chaque lien ne sert qu'une fois.",
        LinkState.EXPIRED: "Ce lien a expiré. Contactez le service des eaux en indiquant le numéro d'alerte "
                           "figurant dans le message.",
        LinkState.INVALID: "Ce lien n'est pas valide. Vérifiez qu'il a été copié en entier, ou contactez le "
                           "service des eaux.",
    },
    "en": {
        "title": "Vigie — water leak alert",
        LinkState.VALID: ("Do you confirm that you are dealing with alert no. {alert_id}? "
                          "You will get no more reminders about it."),
        "button": "I am dealing with it",
        LinkState.ACKNOWLEDGED: "Thank you: alert no. {alert_id} is acknowledged. You will get no more reminders.",
        LinkState.RESOLVED: "Alert no. {alert_id} is already closed: there is nothing left to confirm.",
        LinkState.USED: "This link has already been used. Each link works once.",
        LinkState.EXPIRED: "This link has expired. Contact the water service, quoting the alert number "
                           "given in the message.",
        LinkState.INVALID: "This link is not valid. Check that it was copied whole, or contact the water service.",
    },
}

# A home (assisted-living) alert's page differs in its title and in whom to contact.
_HOME_TEXT = {
    "fr": {
        "title": "Vigie — alerte à domicile",
        LinkState.VALID: ("Confirmez-vous que vous vous occupez de l'alerte n° {alert_id} ? Les autres personnes "
                          "prévenues en seront informées et l'alerte ne sera pas transmise plus loin."),
        LinkState.ACKNOWLEDGED: "Merci : l'alerte n° {alert_id} est prise en charge. Les autres personnes "
                                "prévenues en sont informées.",
        LinkState.EXPIRED: "Ce lien a expiré. Appelez la mairie en indiquant le numéro d'alerte figurant dans "
                           "le message.",
        LinkState.INVALID: "Ce lien n'est pas valide. Vérifiez qu'il a été copié en entier, ou appelez la mairie.",
    },
    "en": {
        "title": "Vigie — home alert",
        LinkState.VALID: ("Do you confirm that you are dealing with alert no. {alert_id}? The others contacted "
                          "will be told and the alert will go no further."),
        LinkState.ACKNOWLEDGED: "Thank you: alert no. {alert_id} is being handled. The others contacted are told.",
        LinkState.EXPIRED: "This link has expired. Call the town hall, quoting the alert number given in the "
                           "message.",
        LinkState.INVALID: "This link is not valid. Check that it was copied whole, or call the town hall.",
    },
}

STATUS = {LinkState.VALID: 200, LinkState.ACKNOWLEDGED: 200, LinkState.RESOLVED: 409,
          LinkState.USED: 410, LinkState.EXPIRED: 410, LinkState.INVALID: 400}


def page(state: LinkState, lang: str, alert_id: int | None = None,
         alert_type: AlertType = AlertType.WATER) -> tuple[str, int]:
    """``(html, status)`` for ``state`` in ``lang`` (``fr``/``en``; anything else: French), for a
    water or a home ``alert_type``."""
    t = _TEXT.get(lang, _TEXT["fr"])
    if alert_type is AlertType.HOME:
        t = {**t, **_HOME_TEXT.get(lang, _HOME_TEXT["fr"])}
    text = escape(t[state].format(alert_id=alert_id))
    form = ""
    if state is LinkState.VALID:
        # A form without an action posts back to this same URL, token included.
        form = f'<form method="post"><button type="submit">{escape(t["button"])}</button></form>'
    html = (f'<!doctype html><html lang="{lang if lang in _TEXT else "fr"}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{escape(t["title"])}</title></head>'
            f'<body><h1>{escape(t["title"])}</h1><p>{text}</p>{form}</body></html>')
    return html, STATUS[state]
