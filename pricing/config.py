"""Pricing configuration: guardrails, experiment arms and their load-time checks."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONTROL_ARM = "control"

# Shares are floats typed by people; allow rounding noise like 0.33 + 0.33 + 0.34.
_SHARE_SUM_TOLERANCE = 1e-6


class Guardrails(BaseModel):
    """Hard limits on a personalized price, applied in the order documented in `pricing.policy`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_deviation: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Price stays within base_price * (1 ± max_deviation); < 1 keeps it positive.",
    )
    max_step: float = Field(
        default=0.1,
        ge=0.0,
        allow_inf_nan=False,
        description="Price moves at most ± this fraction from the last price this user saw.",
    )
    cooldown_s: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="No price change for a (user, item) within this many seconds of the last one.",
    )
    minor_unit: float = Field(
        default=0.01,
        gt=0.0,
        allow_inf_nan=False,
        description="Currency minor unit prices are rounded to (never across a bound).",
    )


class ArmConfig(BaseModel):
    """One non-control experiment arm: how strongly interest moves its prices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(..., min_length=1, description="Unique arm name; 'control' is reserved.")
    strength: float = Field(
        ...,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=(
            "Price multiplier target = 1 + strength * max_deviation * (2 * interest - 1)."
        ),
    )
    share: float = Field(
        ...,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Initial fraction of all traffic; the bandit moves it later.",
    )


class PricingConfig(BaseModel):
    """Policy version, guardrails (global and per category) and the experiment layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_version: str = Field(
        default="bounded-v1", min_length=1, description="Tag written on every price update."
    )
    experiment_id: str = Field(
        default="price-exp-1", min_length=1, description="Salt of the stable user-to-arm hash."
    )
    guardrails: Guardrails = Field(
        default=Guardrails(), description="Guardrails for items without an override."
    )
    category_guardrails: dict[str, Guardrails] = Field(
        default_factory=dict, description="Guardrails that replace the global ones per category."
    )
    control_share: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Fixed fraction of users on arm 'control', which always shows the base price.",
    )
    arms: tuple[ArmConfig, ...] = Field(
        default=(
            ArmConfig(name="gentle", strength=0.5, share=0.4),
            ArmConfig(name="bold", strength=1.0, share=0.4),
        ),
        min_length=1,
        description="Non-control arms; their shares plus control_share sum to 1.",
    )
    min_arm_share: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="The bandit never gives a non-control arm less than this fraction of traffic.",
    )
    attribution_window_s: float = Field(
        default=86400.0,
        gt=0.0,
        allow_inf_nan=False,
        description="A purchase counts for the latest offer of its (user, item) this recently.",
    )

    @model_validator(mode="after")
    def _check_experiment(self) -> Self:
        """Reject arm layouts the bandit and the hash assignment could not honour."""
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if CONTROL_ARM in names:
            raise ValueError("'control' is implicit (control_share); do not list it in arms")
        non_control = 1.0 - self.control_share
        if self.min_arm_share * len(self.arms) > non_control + _SHARE_SUM_TOLERANCE:
            raise ValueError(
                f"min_arm_share {self.min_arm_share} x {len(self.arms)} arms exceeds "
                f"the non-control traffic {non_control}"
            )
        total = sum(arm.share for arm in self.arms)
        if abs(total - non_control) > _SHARE_SUM_TOLERANCE:
            raise ValueError(
                f"arm shares sum to {total}, expected 1 - control_share = {non_control}"
            )
        below = [arm.name for arm in self.arms if arm.share < self.min_arm_share]
        if below:
            raise ValueError(f"arms {below} start below min_arm_share {self.min_arm_share}")
        return self

    def guardrails_for(self, category: str | None) -> Guardrails:
        """Return the category's guardrails if it has an override, else the global ones."""
        if category is None:
            return self.guardrails
        return self.category_guardrails.get(category, self.guardrails)

    def arm_by_name(self, name: str) -> ArmConfig | None:
        """Return the arm called `name`; None for control (it has no policy parameters)."""
        if name == CONTROL_ARM:
            return None
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"unknown arm {name!r}")

    def initial_shares(self) -> dict[str, float]:
        """Return the configured traffic shares, control included, before any outcome is seen."""
        return {CONTROL_ARM: self.control_share} | {arm.name: arm.share for arm in self.arms}
