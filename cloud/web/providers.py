"""Payment providers behind one small interface: where "Pay" leads, and how the browser's
return is checked. Money is credited only from the provider's signed webhook, never here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import razorpay
import requests
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.payments.webhook import sign_body

ProviderName = Literal["dev", "razorpay"]


class WebSettings(BaseSettings):
    """The screens' settings, read from `SWITCHYARD_*` environment."""

    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    payment_provider: ProviderName = "dev"
    razorpay_key_id: str = ""
    razorpay_key_secret: SecretStr = SecretStr("")
    # The Orders API's address (tests point the official SDK at a local stand-in).
    razorpay_base_url: str = "https://api.razorpay.com"
    lookups_per_minute: int = Field(30, ge=1)


@dataclass(frozen=True)
class Checkout:
    """What the page needs to send the consumer to the provider."""

    provider: ProviderName
    account_id: str
    amount_paise: int
    order_id: str | None = None
    key_id: str | None = None


class CallbackIn(BaseModel):
    """What Razorpay Checkout hands back to the page after a payment."""

    razorpay_order_id: str = Field(pattern=r"^order_[A-Za-z0-9]{1,40}$")
    razorpay_payment_id: str = Field(pattern=r"^pay_[A-Za-z0-9]{1,40}$")
    razorpay_signature: str = Field(pattern=r"^[0-9a-f]{64}$")


class PaymentProviderError(RuntimeError):
    """The provider could not prepare the payment (down, refused our keys, bad answer)."""


class PaymentProvider(Protocol):
    """Starts a payment of `amount_paise` for an account; verifies the browser's return."""

    name: ProviderName

    async def start(self, account_id: str, amount_paise: int) -> Checkout:
        """Prepare the provider's side (an order) and say where the consumer goes next."""
        ...

    def callback_valid(self, callback: CallbackIn) -> bool:
        """Whether the checkout's return was signed by the provider (a hint, not a credit)."""
        ...


class DevProvider:
    """Development: the test checkout page plays the gateway (as `switchyard pay` does)."""

    name: ProviderName = "dev"

    async def start(self, account_id: str, amount_paise: int) -> Checkout:
        """No order to create: the test checkout page takes it from here."""
        return Checkout("dev", account_id, amount_paise)

    def callback_valid(self, callback: CallbackIn) -> bool:
        """The test checkout has no browser callback to trust."""
        return False


class RazorpayProvider:
    """Razorpay Orders API and Checkout through the official SDK (MIT, pinned)."""

    name: ProviderName = "razorpay"

    def __init__(self, key_id: str, key_secret: str, base_url: str) -> None:
        self._key_id = key_id
        self._client = razorpay.Client(auth=(key_id, key_secret), base_url=base_url)

    async def start(self, account_id: str, amount_paise: int) -> Checkout:
        """Create an Order for the amount, tagged with the account in its notes."""
        request = {
            "amount": amount_paise,
            "currency": "INR",
            "receipt": f"dues-{account_id}"[:40],
            "notes": {"account_id": account_id},
        }
        try:
            order: dict[str, Any] = await asyncio.to_thread(self._client.order.create, request)
            order_id = str(order["id"])
        except (
            razorpay.errors.BadRequestError,
            razorpay.errors.GatewayError,
            razorpay.errors.ServerError,
        ) as exc:
            raise PaymentProviderError(f"Razorpay refused the order: {exc}") from exc
        except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
            raise PaymentProviderError(f"Razorpay Orders API unusable: {exc!r}") from exc
        if not order_id.startswith("order_"):
            raise PaymentProviderError(f"Razorpay answered an unexpected order id {order_id!r}")
        return Checkout("razorpay", account_id, amount_paise, order_id, self._key_id)

    def callback_valid(self, callback: CallbackIn) -> bool:
        """Verify the checkout signature (HMAC of order|payment with the key secret)."""
        try:
            self._client.utility.verify_payment_signature(callback.model_dump())
        except razorpay.errors.SignatureVerificationError:
            return False
        return True


def build_provider(settings: WebSettings) -> PaymentProvider:
    """The provider the settings name."""
    if settings.payment_provider == "razorpay":
        secret = settings.razorpay_key_secret.get_secret_value()
        if not settings.razorpay_key_id or not secret:
            raise ValueError("SWITCHYARD_RAZORPAY_KEY_ID and _KEY_SECRET must be set")
        return RazorpayProvider(settings.razorpay_key_id, secret, settings.razorpay_base_url)
    return DevProvider()


def checkout_signature(order_id: str, payment_id: str, key_secret: str) -> str:
    """The signature Razorpay Checkout returns (for tests and the stand-in)."""
    return sign_body(f"{order_id}|{payment_id}".encode(), key_secret)
