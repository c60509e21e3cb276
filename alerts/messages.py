"""Texts of the messages sent to residents about a water-leak alert: French by default, English available.

:func:`render` turns an :class:`~vigie.alerts.models.Alert` and the reason of a notification
(opened / reminder / resolved) into a :class:`Message` (subject + plain-text body) in one language.
Each message names the meter by its id (never the address), gives the first day the rule fired in
the language's local date format, the estimated flow (L/h) with what it means per day (L/day) and in
money per day (€, at ``settings.water_price_eur_per_m3``), what to do, the loi Warsmann right, and
how to acknowledge the alert.

Numbers and dates are formatted by hand (Babel is not a dependency): French ``4,5 L/h``,
``15 600 L``, ``0,47 €``, ``1er mars 2026``; English ``4.5 L/h``, ``15,600 L``, ``€0.47``,
``1 March 2026``.

Loi Warsmann (loi 2011-525 art. 2, décret 2012-1078, code général des collectivités territoriales
L2224-12-4 and R2224-20-1): when consumption exceeds twice the subscriber's average for an equivalent
period, the service must inform the subscriber without delay; if the leak is on a pipe after the meter
(not an appliance, sanitary fitting or heating equipment) and the subscriber sends, within one month,
a plumber's certificate of its repair, the bill is capped at twice the average consumption.

:func:`render_home` does the same for a home (assisted-living) alert and a notification of the
escalation engine (:mod:`vigie.alerts.escalation`): a call (escalation step or reminder) with the
event's one-line evidence (:meth:`~vigie.records.HomeEvent.summary`) and the recipient's
acknowledgement link, *handled* (who handles it: a relation or "staff", never a name) and *resolved*.
The home is named by its registry id, as meters are: no address, no name in a message.

:func:`render_digest` writes a staff digest (:mod:`vigie.alerts.digest`): the heating and
device-health findings it announces, then those still open, each with its period and evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from vigie.alerts.models import Alert, EscalationStep, HomeAlert, NotificationReason
from vigie.records import HomeEvent, HomeEventKind, HomeEventSeverity, LeakRule
from vigie.registry import STAFF_LEVEL

LANGUAGES = ("fr", "en")

_MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}


class MessageSettings(Protocol):
    """The settings a message needs (a :class:`vigie.config.Settings` fits)."""

    language: str
    water_price_eur_per_m3: float
    burst_min_duration_min: float


@dataclass(frozen=True, slots=True)
class Message:
    """A notification ready to send: ``subject`` (one line) and plain-text ``body``."""

    subject: str
    body: str


def pick_language(person_language: str | None, settings: MessageSettings) -> str:
    """The person's language if supported, else ``settings.language``, else French."""
    for lang in (person_language, settings.language):
        if lang and lang.lower()[:2] in LANGUAGES:
            return lang.lower()[:2]
    return "fr"


def format_date(day: date, lang: str) -> str:
    """``14 mars 2026`` / ``1er mars 2026`` in French, ``14 March 2026`` in English."""
    d = "1er" if lang == "fr" and day.day == 1 else str(day.day)
    return f"{d} {_MONTHS[lang][day.month - 1]} {day.year}"


def format_number(value: float, decimals: int, lang: str) -> str:
    """Grouped digits with the language's separators (French: narrow no-break space and comma)."""
    text = f"{value:,.{decimals}f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def format_rate(l_per_h: float, lang: str) -> str:
    """A flow in L/h: one decimal below 100 L/h (dropped when zero), whole litres above."""
    text = format_number(l_per_h, 1 if l_per_h < 100 else 0, lang)
    for zero in (",0", ".0"):
        if text.endswith(zero):
            text = text[: -len(zero)]
    return f"{text} L/h"


def format_litres(litres: float, lang: str) -> str:
    """A volume in whole litres, with m³ beside it from 1 000 L on."""
    text = f"{format_number(litres, 0, lang)} L"
    if litres >= 1000:
        text += f" ({format_number(litres / 1000, 1, lang)} m³)"
    return text


def format_euros(amount: float, lang: str) -> str:
    """``0,47 €`` in French, ``€0.47`` in English."""
    return f"{format_number(amount, 2, lang)} €" if lang == "fr" else f"€{format_number(amount, 2, lang)}"


def cost_eur(litres: float, price_eur_per_m3: float) -> float:
    """Cost of ``litres`` of water at ``price_eur_per_m3``."""
    return litres / 1000.0 * price_eur_per_m3


# --- Texts ------------------------------------------------------------------------------------
# One table per language; {placeholders} are filled by _fields(). Kept as data so a translator
# edits one place and both languages stay parallel.

_TEXT = {
    "fr": {
        "subject": {
            LeakRule.CONTINUOUS_FLOW: "Fuite d'eau probable au compteur {meter}",
            LeakRule.BURST: "Urgent : débit d'eau très élevé au compteur {meter}",
            LeakRule.ABNORMAL_CONSUMPTION: "Consommation d'eau anormale au compteur {meter}",
            LeakRule.METER_FLAG: "Votre compteur d'eau {meter} signale une fuite",
        },
        "reminder_prefix": "Rappel : ",
        "resolved_prefix": "Fin d'alerte — ",
        "hello": "Bonjour,",
        "what": {
            LeakRule.CONTINUOUS_FLOW: (
                "Le service des eaux a détecté une fuite d'eau probable sur votre compteur n° {meter} : "
                "l'eau n'a jamais cessé de couler, même la nuit, depuis le {first_day}."),
            LeakRule.BURST: (
                "Depuis le {first_day}, le service des eaux mesure sur votre compteur n° {meter} un débit "
                "d'eau très élevé, maintenu pendant au moins {burst_min} minutes. "
                "Il peut s'agir d'une canalisation rompue."),
            LeakRule.ABNORMAL_CONSUMPTION: (
                "Votre consommation d'eau relevée par le compteur n° {meter} depuis le {first_day} "
                "dépasse le double de votre consommation moyenne pour une période comparable : "
                "elle est anormale au sens de la loi Warsmann."),
            LeakRule.METER_FLAG: (
                "Votre compteur d'eau n° {meter} signale lui-même une fuite depuis le {first_day}."),
        },
        "reminder": "Cette alerte n'a pas encore été prise en compte et la fuite est toujours détectée "
                    "(dernier jour : {last_day}).",
        "rate": "Débit estimé : {rate}, soit environ {per_day} par jour et {cost} par jour "
                "(au tarif de {price}/m³).",
        "volume": "Consommation du {last_day} : {volume}, soit environ {cost} (au tarif de {price}/m³).",
        "detail": "Détail technique : {detail}",
        "todo_title": "Que faire ?",
        "todo_burst_first": "Fermez tout de suite le robinet d'arrêt général, près du compteur.",
        "todo": (
            "Fermez tous les robinets et arrêtez les appareils qui utilisent de l'eau (lave-linge, "
            "lave-vaisselle, arrosage).",
            "Regardez votre compteur : si ses chiffres ou sa petite roue tournent encore alors que tout "
            "est fermé, l'eau fuit quelque part.",
            "Vérifiez la chasse d'eau des toilettes (un filet d'eau qui coule dans la cuvette) et le "
            "groupe de sécurité du chauffe-eau (de l'eau qui s'écoule en permanence à l'évacuation).",
            "Si vous ne trouvez pas la fuite, faites appel à un plombier.",
        ),
        "warsmann": (
            "Loi Warsmann : si la fuite vient d'une canalisation située après le compteur (et non d'un "
            "appareil ménager, d'un équipement sanitaire ou de chauffage), votre facture peut être "
            "plafonnée au double de votre consommation moyenne. Pour cela, envoyez au service des eaux, "
            "dans un délai d'un mois, une attestation d'un plombier indiquant que la fuite a été réparée, "
            "où elle se trouvait et la date de la réparation."),
        "ack_link": "Pour nous dire que vous vous en occupez (vous ne recevrez plus de rappel), "
                    "ouvrez {ack_url} et confirmez la prise en compte de l'alerte.",
        "ack_plain": "Pour nous dire que vous vous en occupez (vous ne recevrez plus de rappel), "
                     "contactez le service des eaux en indiquant le numéro d'alerte {alert_id}.",
        "resolved": (
            "Bonne nouvelle : aucune fuite n'est plus détectée sur votre compteur n° {meter} "
            "depuis le {resolved_day}. L'alerte n° {alert_id}, ouverte le {first_day}, est close."),
        "resolved_warsmann": (
            "Si un plombier a réparé une fuite sur une canalisation après le compteur, pensez à envoyer "
            "son attestation au service des eaux dans le mois (loi Warsmann) : votre facture pourra être "
            "plafonnée au double de votre consommation moyenne."),
        "signature": "Alerte n° {alert_id} — Vigie, service des eaux de votre commune",
    },
    "en": {
        "subject": {
            LeakRule.CONTINUOUS_FLOW: "Probable water leak at meter {meter}",
            LeakRule.BURST: "Urgent: very high water flow at meter {meter}",
            LeakRule.ABNORMAL_CONSUMPTION: "Abnormal water consumption at meter {meter}",
            LeakRule.METER_FLAG: "Your water meter {meter} reports a leak",
        },
        "reminder_prefix": "Reminder: ",
        "resolved_prefix": "All clear — ",
        "hello": "Hello,",
        "what": {
            LeakRule.CONTINUOUS_FLOW: (
                "The water service has detected a probable leak on your meter no. {meter}: water has "
                "never stopped flowing, not even at night, since {first_day}."),
            LeakRule.BURST: (
                "Since {first_day}, the water service has measured a very high flow on your meter no. "
                "{meter}, sustained for at least {burst_min} minutes. A pipe may have burst."),
            LeakRule.ABNORMAL_CONSUMPTION: (
                "Your water consumption recorded by meter no. {meter} since {first_day} is more than twice "
                "your average consumption for a comparable period: it is abnormal under the French "
                "loi Warsmann."),
            LeakRule.METER_FLAG: "Your water meter no. {meter} has itself been reporting a leak since {first_day}.",
        },
        "reminder": "Nobody has acknowledged this alert yet and the leak is still detected "
                    "(latest day: {last_day}).",
        "rate": "Estimated flow: {rate}, that is about {per_day} per day and {cost} per day "
                "(at {price}/m³).",
        "volume": "Consumption on {last_day}: {volume}, that is about {cost} (at {price}/m³).",
        "detail": "Technical detail: {detail}",
        "todo_title": "What to do",
        "todo_burst_first": "Close the main stopcock near the meter right away.",
        "todo": (
            "Close all taps and stop the appliances that use water (washing machine, dishwasher, "
            "garden watering).",
            "Look at your meter: if its digits or its small wheel still turn while everything is "
            "closed, water is leaking somewhere.",
            "Check the toilet cistern (a trickle running into the bowl) and the water heater's safety "
            "valve (water running to the drain all the time).",
            "If you cannot find the leak, call a plumber.",
        ),
        "warsmann": (
            "Loi Warsmann: if the leak is on a pipe after the meter (not an appliance, sanitary fitting or "
            "heating equipment), your bill can be capped at twice your average consumption. To claim it, "
            "send the water service, within one month, a plumber's certificate stating that the leak was "
            "repaired, where it was and the date of the repair."),
        "ack_link": "To tell us you are dealing with it (you will get no more reminders), open {ack_url} "
                    "and acknowledge the alert.",
        "ack_plain": "To tell us you are dealing with it (you will get no more reminders), contact the "
                     "water service and quote alert number {alert_id}.",
        "resolved": (
            "Good news: no leak has been detected on your meter no. {meter} since {resolved_day}. "
            "Alert no. {alert_id}, opened on {first_day}, is closed."),
        "resolved_warsmann": (
            "If a plumber repaired a leak on a pipe after the meter, remember to send their certificate "
            "to the water service within one month (loi Warsmann): your bill can then be capped at twice "
            "your average consumption."),
        "signature": "Alert no. {alert_id} — Vigie, your municipality's water service",
    },
}


def _fields(alert: Alert, lang: str, settings: MessageSettings) -> dict[str, str]:
    price = settings.water_price_eur_per_m3
    fields = {
        "meter": alert.meter_id,
        "alert_id": str(alert.id),
        "first_day": format_date(alert.first_day, lang),
        "last_day": format_date(alert.last_day, lang),
        "resolved_day": format_date(alert.resolved_day or alert.last_day, lang),
        "burst_min": format_number(settings.burst_min_duration_min, 0, lang),
        "price": format_euros(price, lang),
        "detail": alert.detail or "",
    }
    if alert.rate_l_per_h is not None:
        per_day = alert.rate_l_per_h * 24
        fields.update(rate=format_rate(alert.rate_l_per_h, lang), per_day=format_litres(per_day, lang),
                      cost=format_euros(cost_eur(per_day, price), lang))
    elif alert.volume_l is not None:
        fields.update(volume=format_litres(alert.volume_l, lang),
                      cost=format_euros(cost_eur(alert.volume_l, price), lang))
    return fields


def render(alert: Alert, reason: NotificationReason | str, lang: str, settings: MessageSettings,
           ack_url: str | None = None) -> Message:
    """The message telling a resident about ``alert`` for ``reason``, in ``lang`` (``fr``/``en``).

    ``ack_url`` (the recipient's own one-click link, :mod:`vigie.alerts.acklinks`) is offered to
    acknowledge; without it the message asks them to contact the water service with the alert number.
    Raises ``ValueError`` for an unknown language, rule kind or reason.
    """
    if lang not in _TEXT:
        raise ValueError(f"unsupported message language {lang!r}; expected one of {LANGUAGES}")
    t = _TEXT[lang]
    reason = NotificationReason(reason)
    rule = LeakRule(alert.kind)
    f = _fields(alert, lang, settings)

    if reason is NotificationReason.RESOLVED:
        # The kind stays in the subject: one meter can have several alerts end the same day.
        subject = t["resolved_prefix"] + t["subject"][rule].format(**f)
        paragraphs = [t["hello"], t["resolved"].format(**f), t["resolved_warsmann"]]
    else:
        subject = t["subject"][rule].format(**f)
        paragraphs = [t["hello"], t["what"][rule].format(**f)]
        if reason is NotificationReason.REMINDER:
            subject = t["reminder_prefix"] + subject
            paragraphs.append(t["reminder"].format(**f))
        if "rate" in f:
            paragraphs.append(t["rate"].format(**f))
        elif "volume" in f:
            paragraphs.append(t["volume"].format(**f))
        if alert.detail:
            paragraphs.append(t["detail"].format(**f))
        steps = list(t["todo"])
        if rule is LeakRule.BURST:
            steps.insert(0, t["todo_burst_first"])
        paragraphs.append(t["todo_title"] + "\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
        paragraphs.append(t["warsmann"])
        paragraphs.append(t["ack_link"].format(ack_url=ack_url) if ack_url else t["ack_plain"].format(**f))
    paragraphs.append(t["signature"].format(**f))
    return Message(subject=subject, body="\n\n".join(paragraphs) + "\n")


# --- Home (assisted-living) alerts -------------------------------------------------------------
_HOME_TEXT = {
    "fr": {
        "kind": {
            HomeEventKind.INACTIVITY: "inactivité prolongée",
            HomeEventKind.NO_WAKEUP: "pas de lever ce matin",
            HomeEventKind.LONG_BATHROOM: "séjour prolongé dans la salle de bain (chute possible)",
            HomeEventKind.NIGHT_EXIT: "sortie de nuit sans retour",
            HomeEventKind.DECLINE: "activité en baisse depuis plusieurs jours",
            HomeEventKind.WATER_LEAK: "détecteur de fuite d'eau mouillé",
            HomeEventKind.SENSOR_SILENT: "capteur silencieux (technique)",
        },
        "subject": "Vigie — {kind} au domicile {home}",
        "urgent": "Urgent : ",
        "reminder_prefix": "Rappel : ",
        "handled_prefix": "Pris en charge — ",
        "resolved_prefix": "Fin d'alerte — ",
        "hello": "Bonjour,",
        "what": "Vigie a détecté au domicile {home} : {kind}, depuis {start} (alerte n° {alert_id}).",
        "evidence": "Ce que disent les capteurs : {summary}",
        "first": "Vous êtes la première personne prévenue.",
        "level": "Personne n'a encore pris cette alerte en charge : vous êtes prévenu(e) comme contact de niveau "
                 "{level}.",
        "staff": "Personne n'a encore pris cette alerte en charge : vous êtes prévenu(e) comme personnel "
                 "d'astreinte de la mairie.",
        "reminder": "Rappel : personne n'a encore pris cette alerte en charge.",
        "todo": "Si vous pouvez passer ou appeler, confirmez que vous vous en occupez : les autres personnes "
                "prévenues en seront informées et l'alerte ne sera pas transmise plus loin. En cas d'urgence "
                "vitale, appelez le 15 ou le 112.",
        "ack_link": "Je m'en occupe : {ack_url}",
        "ack_plain": "Pour confirmer, utilisez l'application Vigie ou appelez la mairie en indiquant l'alerte "
                     "n° {alert_id}.",
        "handled": "L'alerte n° {alert_id} au domicile {home} ({kind}) est prise en charge depuis {ack_at} par "
                   "{who}. Vous n'avez rien à faire ; vous serez prévenu(e) de sa clôture.",
        "resolved_cleared": "L'alerte n° {alert_id} au domicile {home} ({kind}) est close : la situation est "
                            "revenue à la normale {resolved_at}.",
        "resolved_person": "L'alerte n° {alert_id} au domicile {home} ({kind}) a été close {resolved_at} par {who}.",
        "who_staff": "le personnel de la mairie",
        "who_caregiver": "un proche",
        "who_relation": "votre contact « {relation} »",
        "at": "le {day:02d}/{month:02d} à {hhmm}",
        "signature": "Alerte n° {alert_id} — Vigie, aide au maintien à domicile de votre commune",
    },
    "en": {
        "kind": {
            HomeEventKind.INACTIVITY: "prolonged inactivity",
            HomeEventKind.NO_WAKEUP: "no wake-up this morning",
            HomeEventKind.LONG_BATHROOM: "long stay in the bathroom (possible fall)",
            HomeEventKind.NIGHT_EXIT: "night exit with no return",
            HomeEventKind.DECLINE: "activity falling over several days",
            HomeEventKind.WATER_LEAK: "water-leak sensor wet",
            HomeEventKind.SENSOR_SILENT: "silent sensor (technical)",
        },
        "subject": "Vigie — {kind} at home {home}",
        "urgent": "Urgent: ",
        "reminder_prefix": "Reminder: ",
        "handled_prefix": "Handled — ",
        "resolved_prefix": "Alert over — ",
        "hello": "Hello,",
        "what": "Vigie detected at home {home}: {kind}, since {start} (alert no. {alert_id}).",
        "evidence": "What the sensors say: {summary}",
        "first": "You are the first person contacted.",
        "level": "Nobody has taken this alert on yet: you are contacted as a level {level} contact.",
        "staff": "Nobody has taken this alert on yet: you are contacted as the town hall's staff on duty.",
        "reminder": "Reminder: nobody has taken this alert on yet.",
        "todo": "If you can go round or call, confirm that you are dealing with it: the others contacted will "
                "be told and the alert will go no further. In a life-threatening emergency, call 112.",
        "ack_link": "I am dealing with it: {ack_url}",
        "ack_plain": "To confirm, use the Vigie app or call the town hall, quoting alert no. {alert_id}.",
        "handled": "Alert no. {alert_id} at home {home} ({kind}) has been handled since {ack_at} by {who}. "
                   "There is nothing for you to do; you will be told when it is closed.",
        "resolved_cleared": "Alert no. {alert_id} at home {home} ({kind}) is closed: things went back to normal "
                            "{resolved_at}.",
        "resolved_person": "Alert no. {alert_id} at home {home} ({kind}) was closed {resolved_at} by {who}.",
        "who_staff": "the town hall's staff",
        "who_caregiver": "a caregiver",
        "who_relation": "the {relation}",
        "at": "on {day} {month_name} at {hhmm}",
        "signature": "Alert no. {alert_id} — Vigie, your municipality's home-support service",
    },
}


def evidence_event(evidence: dict) -> HomeEvent:
    """The :class:`~vigie.records.HomeEvent` a home alert's ``evidence`` (its ``to_dict()``) came from."""
    values = dict(evidence)
    for key in ("start", "detected_at", "last_activity"):
        if values.get(key) is not None:
            values[key] = datetime.fromisoformat(values[key])
    values["kind"], values["severity"] = HomeEventKind(values["kind"]), HomeEventSeverity(values["severity"])
    return HomeEvent(**values)


def _local_moment(moment: datetime, lang: str, tz: str) -> str:
    local = moment.astimezone(ZoneInfo(tz))
    return _HOME_TEXT[lang]["at"].format(day=local.day, month=local.month, hhmm=local.strftime("%H:%M"),
                                         month_name=_MONTHS[lang][local.month - 1][:3])


def _who(label: str | None, t: dict) -> str:
    if label in (None, "staff"):
        return t["who_staff"]
    if label == "caregiver":
        return t["who_caregiver"]
    return t["who_relation"].format(relation=label)


def render_home(alert: HomeAlert, reason: NotificationReason | str, lang: str, tz: str,
                ack_url: str | None = None, step: EscalationStep | None = None) -> Message:
    """The message to one person about home ``alert`` for ``reason`` (escalation, reminder, handled,
    resolved) in ``lang``, times local to ``tz``. ``step``: the escalation step that calls them (for
    an escalation message). Raises ``ValueError`` for an unknown language, kind or reason."""
    if lang not in _HOME_TEXT:
        raise ValueError(f"unsupported message language {lang!r}; expected one of {LANGUAGES}")
    t = _HOME_TEXT[lang]
    reason = NotificationReason(reason)
    kind = t["kind"][HomeEventKind(alert.kind)]
    f = {"home": alert.household_id, "kind": kind, "alert_id": str(alert.id),
         "start": _local_moment(alert.start, lang, tz)}
    subject = t["subject"].format(**f)
    if reason is NotificationReason.HANDLED:
        subject = t["handled_prefix"] + subject
        body = [t["hello"], t["handled"].format(**f, ack_at=_local_moment(alert.acknowledged_at, lang, tz),
                                                who=_who(alert.acknowledged_as, t))]
    elif reason is NotificationReason.RESOLVED:
        subject = t["resolved_prefix"] + subject
        when = _local_moment(alert.resolved_at, lang, tz)
        text = (t["resolved_person"].format(**f, resolved_at=when, who=_who(alert.acknowledged_as, t))
                if alert.resolved_by else t["resolved_cleared"].format(**f, resolved_at=when))
        body = [t["hello"], text]
    elif reason in (NotificationReason.ESCALATION, NotificationReason.REMINDER):
        if alert.severity == HomeEventSeverity.HIGH:
            subject = t["urgent"] + subject
        body = [t["hello"], t["what"].format(**f),
                t["evidence"].format(summary=evidence_event(alert.evidence).summary(lang, tz))]
        if reason is NotificationReason.REMINDER:
            subject = t["reminder_prefix"] + subject
            body.append(t["reminder"])
        elif step is not None and step.level == STAFF_LEVEL:
            body.append(t["staff"])
        elif step is not None and step.step_no > 1:
            body.append(t["level"].format(level=step.level))
        else:
            body.append(t["first"])
        body.append(t["todo"])
        body.append(t["ack_link"].format(ack_url=ack_url) if ack_url else t["ack_plain"].format(**f))
    else:
        raise ValueError(f"no home-alert message for reason {reason}")
    body.append(t["signature"].format(**f))
    return Message(subject=subject, body="\n\n".join(body) + "\n")


# -- staff digests ---------------------------------------------------------------------------------
_DIGEST_TEXT = {
    "fr": {
        "subject": "Vigie — {new} nouveau(x) constat(s) pour les services techniques ({commune})",
        "hello": "Bonjour,",
        "intro": "Voici les constats de Vigie sur le chauffage des bâtiments communaux et l'état des appareils.",
        "new": "Nouveaux constats ({n}) :",
        "open": "Toujours ouverts ({n}) :",
        "more": "… et {n} autre(s) (liste complète : API /findings).",
        "period": "du {start} au {end}",
        "since": "depuis le {start}",
        "no": "n°",
        "todo": "Chaque constat peut être pris en charge dans l'API (POST /findings/<n°>/ack) ; il se "
                "ferme de lui-même quand l'analyse ne le voit plus.",
        "signature": "— Vigie, digest n° {digest_id}",
        "kind": {
            "window_open_heating": "chauffage fenêtre ouverte",
            "unoccupied_heating": "chauffage d'une salle inoccupée",
            "setpoint_above_comfort": "consigne au-dessus de la température de confort",
            "cannot_reach_setpoint": "radiateur qui n'atteint pas sa consigne (maintenance)",
            "energy_trend": "consommation par degré-jour en hausse",
            "silent": "appareil muet",
            "low_battery": "pile faible",
            "clock_drift": "horloge de l'appareil décalée",
        },
    },
    "en": {
        "subject": "Vigie — {new} new finding(s) for the technical staff ({commune})",
        "hello": "Hello,",
        "intro": "Here are Vigie's findings on the heating of the commune's buildings and on its devices.",
        "new": "New findings ({n}):",
        "open": "Still open ({n}):",
        "more": "… and {n} more (full list: API /findings).",
        "period": "from {start} to {end}",
        "since": "since {start}",
        "no": "no.",
        "todo": "Each finding can be taken in hand through the API (POST /findings/<no.>/ack); it closes "
                "by itself once the analysis no longer sees it.",
        "signature": "— Vigie, digest no. {digest_id}",
        "kind": {
            "window_open_heating": "heating with a window open",
            "unoccupied_heating": "heating an unoccupied room",
            "setpoint_above_comfort": "setpoint above the comfort temperature",
            "cannot_reach_setpoint": "radiator cannot reach its setpoint (maintenance)",
            "energy_trend": "energy per degree-day rising",
            "silent": "silent device",
            "low_battery": "low battery",
            "clock_drift": "device clock drifting",
        },
    },
}
#: The evidence figures a digest shows, in this order, with their label per language and unit;
#: other evidence (times, thresholds, reasons) stays in the API's ``evidence``.
_EVIDENCE = (
    ("duration_h", {"fr": "durée", "en": "duration"}, " h"),
    ("valve_pct", {"fr": "vanne", "en": "valve"}, " %"),
    ("temperature_c", {"fr": "température", "en": "temperature"}, " °C"),
    ("setpoint_c", {"fr": "consigne", "en": "setpoint"}, " °C"),
    ("comfort_c", {"fr": "confort", "en": "comfort"}, " °C"),
    ("setback_c", {"fr": "réduit", "en": "set-back"}, " °C"),
    ("gap_c", {"fr": "écart", "en": "gap"}, " °C"),
    ("outdoor_c", {"fr": "extérieur", "en": "outdoor"}, " °C"),
    ("wasted_kwh", {"fr": "gaspillage estimé", "en": "estimated waste"}, " kWh"),
    ("kwh_per_hdd", {"fr": "kWh par DJU", "en": "kWh per degree-day"}, ""),
    ("reference_kwh_per_hdd", {"fr": "semaines précédentes", "en": "previous weeks"}, ""),
    ("silent_for_s", {"fr": "muet depuis", "en": "silent for"}, None),
    ("battery_pct", {"fr": "pile", "en": "battery"}, " %"),
    ("offset_s", {"fr": "décalage", "en": "offset"}, None),
)
DIGEST_MAX_LISTED = 50


def _duration(seconds: float, lang: str) -> str:
    s = abs(seconds)
    value, unit = (s / 86400, " j" if lang == "fr" else " d") if s >= 86400 else (
        (s / 3600, " h") if s >= 3600 else (s / 60, " min"))
    return ("-" if seconds < 0 else "") + format_number(value, 1, lang) + unit


def _evidence_text(evidence: dict, lang: str, limit: int = 4) -> str:
    parts = []
    for key, labels, unit in _EVIDENCE:
        value = evidence.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        text = _duration(float(value), lang) if unit is None else format_number(float(value), 1, lang) + unit
        parts.append(f"{labels[lang]} {text}")
        if len(parts) == limit:
            break
    return "; ".join(parts)


def _digest_moment(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%d/%m/%Y %H:%M")


def _finding_line(row, lang: str, tz: str) -> str:
    t = _DIGEST_TEXT[lang]
    kind = t["kind"].get(row.kind, row.kind.replace("_", " "))
    where = row.label or row.subject
    start, end = _digest_moment(row.start, tz), _digest_moment(row.end, tz)
    period = t["since"].format(start=start) if start == end else t["period"].format(start=start, end=end)
    evidence = _evidence_text(row.evidence or {}, lang)
    return f"- {t['no']} {row.id} {where} — {kind}, {period}" + (f" ({evidence})" if evidence else "")


def render_digest(digest, new: list, still_open: list, lang: str, tz: str) -> Message:
    """The staff digest ``digest`` (:class:`vigie.alerts.digest.StaffDigest`) announcing ``new``
    findings and recalling ``still_open`` ones (:class:`vigie.alerts.findings.FacilityFinding`),
    in ``lang``, times local to ``tz``; at most :data:`DIGEST_MAX_LISTED` lines per list. Findings
    are named by their label (building and room names, device ids), never by a person. Raises
    ``ValueError`` for an unknown language."""
    if lang not in _DIGEST_TEXT:
        raise ValueError(f"unsupported message language {lang!r}; expected one of {LANGUAGES}")
    t = _DIGEST_TEXT[lang]
    body = [t["hello"], t["intro"]]
    for title, rows in ((t["new"], new), (t["open"], still_open)):
        if not rows:
            continue
        lines = [_finding_line(r, lang, tz) for r in rows[:DIGEST_MAX_LISTED]]
        if len(rows) > DIGEST_MAX_LISTED:
            lines.append(t["more"].format(n=len(rows) - DIGEST_MAX_LISTED))
        body.append(title.format(n=len(rows)) + "\n" + "\n".join(lines))
    body.append(t["todo"])
    body.append(t["signature"].format(digest_id=digest.id))
    subject = t["subject"].format(new=len(new), commune=digest.commune)
    return Message(subject=subject, body="\n\n".join(body) + "\n")
