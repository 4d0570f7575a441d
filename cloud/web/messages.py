"""Every string of the consumer page, in English and Hindi (the words of /work/shared/HINDI.md:
the ones consumers in Ujjain read about this service)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "hi"]
LANGS: tuple[Lang, ...] = ("en", "hi")
LANGUAGE_NAMES: dict[Lang, str] = {"en": "English", "hi": "हिन्दी"}

# key -> (English, Hindi). Placeholders are str.format fields, the same in both.
CATALOGUE: dict[str, tuple[str, str]] = {
    "title": ("Pay your electricity bill", "बिजली बिल भरें"),
    "tagline": (
        "Pay online and your connection is restored by itself within seconds: no trips to"
        " the office.",
        "ऑनलाइन बिल भरते ही कनेक्शन कुछ ही सेकंड में अपने आप जुड़ जाएगा: कार्यालय के चक्कर नहीं।",
    ),
    "language": ("Language", "भाषा"),
    "account_label": ("Consumer / account number", "उपभोक्ता / खाता संख्या"),
    "account_hint": (
        "As printed on your bill, for example ACC000123.",
        "जैसा आपके बिल पर छपा है, उदाहरण ACC000123।",
    ),
    "lookup": ("Show my bill", "मेरा बिल देखें"),
    "account": ("Account", "खाता"),
    "amount": ("Amount", "राशि"),
    "skip": ("Skip to content", "मुख्य भाग पर जाएँ"),
    "outstanding": ("Outstanding dues", "बकाया राशि"),
    "fee": ("Disconnection and reconnection charge", "कनेक्शन काटने व जोड़ने की राशि"),
    "credit": ("Paid in advance", "अग्रिम जमा राशि"),
    "total": ("Total payable", "कुल बिल"),
    "supply": ("Electricity supply", "बिजली"),
    "supply_on": ("Supply on", "बिजली चालू है"),
    "supply_off": ("Supply off", "बिजली बंद है"),
    "press_button": (
        "Your dues are paid. Press the button on your smart meter to switch the power on.",
        "आपका बकाया जमा हो गया है। बिजली चालू करने के लिए अपने स्मार्ट मीटर का बटन दबाएँ।",
    ),
    "nothing_due": ("Nothing to pay.", "कोई बकाया नहीं है।"),
    "amount_label": ("Amount to pay (₹)", "भरने की राशि (₹)"),
    "pay": ("Pay online", "ऑनलाइन बिल भरें"),
    "not_found": ("No account has this number.", "इस संख्या का कोई खाता नहीं मिला।"),
    "invalid_account": (
        "Enter the account number as printed on your bill.",
        "बिल पर छपी खाता संख्या लिखें।",
    ),
    "invalid_amount": (
        "Enter an amount from ₹1 up to the total payable.",
        "₹1 से कुल बिल तक की राशि लिखें।",
    ),
    "rate_limited": (
        "Too many lookups from your connection. Please try again in a minute.",
        "बहुत बार खोजा गया। कृपया एक मिनट बाद फिर से कोशिश करें।",
    ),
    "timeline_title": ("Your payment", "आपका भुगतान"),
    "step_paid": ("Payment received", "भुगतान मिल गया"),
    "step_sent": ("Command sent to switch the power on", "बिजली चालू करने का आदेश भेजा गया"),
    "step_dcu": ("Reached the concentrator near you", "आपके क्षेत्र के कंसंट्रेटर तक पहुँचा"),
    "step_on": ("Meter confirmed: supply on", "मीटर ने पुष्टि की: बिजली चालू है"),
    "step_button": (
        "Meter ready: press the button on your meter",
        "मीटर तैयार है: मीटर का बटन दबाएँ",
    ),
    "elapsed": ("{seconds} s after payment", "भुगतान के {seconds} सेकंड बाद"),
    "waiting": ("Waiting…", "प्रतीक्षा करें…"),
    "outcome_pending": (
        "Your connection is being restored. This page updates by itself.",
        "आपका कनेक्शन जोड़ा जा रहा है। यह पेज अपने आप अपडेट होता है।",
    ),
    "outcome_on": (
        "Supply on: your power is back {seconds} s after payment.",
        "बिजली चालू: भुगतान के {seconds} सेकंड बाद बिजली आ गई।",
    ),
    "outcome_partial": (
        "Part payment received. Still to pay: {amount}. The supply stays off until the total"
        " is paid.",
        "आंशिक भुगतान मिल गया। अभी {amount} और भरना है। पूरी राशि जमा होने तक बिजली बंद रहेगी।",
    ),
    "outcome_failed": (
        "The meter has not confirmed yet. Your payment is safe; the electricity company will"
        " switch the power on as soon as the meter can be reached.",
        "मीटर से अभी पुष्टि नहीं मिली। आपका भुगतान सुरक्षित है; मीटर से संपर्क होते ही बिजली कंपनी"
        " बिजली चालू कर देगी।",
    ),
    "outcome_unmatched": (
        "Payment received. It is being matched to your account by the electricity company.",
        "भुगतान मिल गया। बिजली कंपनी इसे आपके खाते से जोड़ रही है।",
    ),
    "payment_unknown": (
        "This payment has not reached us yet.",
        "यह भुगतान अभी हम तक नहीं पहुँचा है।",
    ),
    "refresh": ("Refresh", "ताज़ा करें"),
    "another": ("Look up another account", "दूसरा खाता देखें"),
    "checkout_title": ("Test checkout (development only)", "टेस्ट भुगतान (केवल डेवलपमेंट के लिए)"),
    "checkout_note": (
        "No real money moves: this page acts as the payment gateway and sends a signed"
        " payment.captured webhook, exactly as `switchyard pay` does.",
        "इसमें असली पैसा नहीं लगता: यह पेज पेमेंट गेटवे की तरह हस्ताक्षरित payment.captured"
        " वेबहुक भेजता है, ठीक `switchyard pay` की तरह।",
    ),
    "checkout_pay": ("Pay now", "अभी भरें"),
    "provider_unavailable": (
        "Online payment is not available just now. Please try again in a few minutes.",
        "ऑनलाइन भुगतान अभी उपलब्ध नहीं है। कृपया कुछ मिनटों में फिर से कोशिश करें।",
    ),
    "razorpay_title": ("Pay with Razorpay", "Razorpay से भुगतान करें"),
    "razorpay_open": ("Open Razorpay Checkout", "Razorpay चेकआउट खोलें"),
    "razorpay_needs_js": (
        "Razorpay Checkout needs JavaScript.",
        "Razorpay चेकआउट के लिए JavaScript चाहिए।",
    ),
    "callback_invalid": (
        "The payment could not be verified. If money was taken, it will be credited when the"
        " payment gateway confirms it.",
        "भुगतान की पुष्टि नहीं हो सकी। अगर पैसा कट गया है, तो पेमेंट गेटवे की पुष्टि होते ही खाते में जमा हो जाएगा।",
    ),
}


def pick_lang(value: str | None) -> Lang:
    """The language asked for, English unless Hindi is named."""
    return "hi" if value == "hi" else "en"


def t(key: str, lang: Lang, **fields: object) -> str:
    """The string `key` in `lang`, with its fields filled in."""
    english, hindi = CATALOGUE[key]
    text = hindi if lang == "hi" else english
    return text.format(**fields) if fields else text
