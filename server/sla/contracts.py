"""SLA policies of contracts, read from the `contracts` catalog table.

The `policy` column contains JSON that decodes to one `SlaPolicy`, or to a list
of `SlaPolicy` versions with distinct `effective_from` (docs/sla.md shows the
shape). Every read of the table goes through `_contract_rows`, so a change
to where contracts are stored touches one function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from .policy import SlaPolicy, validate_policies

if TYPE_CHECKING:
    from ..store import Store

_decode_policy_json = msgspec.json.Decoder(SlaPolicy | list[SlaPolicy]).decode


class PolicyUnavailable(Exception):
    """The order names a contract whose SLA policy cannot be used."""

    def __init__(self, contract_id: str, message: str) -> None:
        super().__init__(message)
        self.contract_id = contract_id
        self.message = message


def decode_policy(contract_id: str, text: str | bytes) -> tuple[SlaPolicy, ...]:
    """Decode a contract's `policy` JSON into its policy versions, raising PolicyUnavailable when invalid."""
    try:
        decoded = _decode_policy_json(text)
        return validate_policies(decoded)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        raise PolicyUnavailable(contract_id, f"the SLA policy of contract {contract_id!r} is invalid: {exc}") from None


# Contract documents are read from the catalog in pages of this many.
_CATALOG_PAGE = 1000


async def _contract_rows(store: Store) -> dict[str, str]:
    """Return the policy versions of every contract as `SlaPolicy` JSON, keyed by contract id.

    A contract whose stored policy no longer builds maps to an empty text,
    which `decode_policy` reports as an unusable policy.
    """
    from ..catalog.commands import build_policy
    from ..store.catalog import catalog_of

    catalog = catalog_of(store)
    texts: dict[str, str] = {}
    after: str | None = None
    while True:
        page = await catalog.page("contract", after=after, limit=_CATALOG_PAGE)
        for document in page[:_CATALOG_PAGE]:
            contract_id = str(document["contract_id"])
            try:
                versions = [build_policy(version) for version in document.get("policies", [])]
                texts[contract_id] = msgspec.json.encode(versions).decode() if versions else ""
            except (ValueError, msgspec.ValidationError):
                texts[contract_id] = ""
        if len(page) <= _CATALOG_PAGE:
            return texts
        after = str(page[_CATALOG_PAGE - 1]["contract_id"])


class PolicyCatalog:
    """The contracts' policies as read once, decoded on first use."""

    def __init__(self, policy_texts: dict[str, str]) -> None:
        self._texts = policy_texts
        self._decoded: dict[str, tuple[SlaPolicy, ...] | PolicyUnavailable] = {}

    @classmethod
    async def load(cls, store: Store) -> PolicyCatalog:
        return cls(await _contract_rows(store))

    def policies_for(self, contract_id: str) -> tuple[SlaPolicy, ...]:
        """Return the policy versions of `contract_id`, raising PolicyUnavailable when unknown or invalid."""
        if contract_id not in self._decoded:
            text = self._texts.get(contract_id)
            if text is None:
                self._decoded[contract_id] = PolicyUnavailable(
                    contract_id, f"contract {contract_id!r} is not in the contracts catalog"
                )
            else:
                try:
                    self._decoded[contract_id] = decode_policy(contract_id, text)
                except PolicyUnavailable as exc:
                    self._decoded[contract_id] = exc
        result = self._decoded[contract_id]
        if isinstance(result, PolicyUnavailable):
            raise result
        return result


async def load_policy(store: Store, contract_id: str) -> tuple[SlaPolicy, ...]:
    """Return the policy versions of one contract, raising PolicyUnavailable when unknown or invalid."""
    catalog = await PolicyCatalog.load(store)
    return catalog.policies_for(contract_id)
