"""Sales tax on the charged amount by the buyer's country (pricing.md §8, DECISIONS D3)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction

import attrs

from domain.errors import InvalidInput

# ISO 3166-1: every officially assigned alpha-2 code with its alpha-3 code (249 countries).
_ISO_3166 = """
AD AND AE ARE AF AFG AG ATG AI AIA AL ALB AM ARM AO AGO AQ ATA AR ARG AS ASM AT AUT AU AUS
AW ABW AX ALA AZ AZE BA BIH BB BRB BD BGD BE BEL BF BFA BG BGR BH BHR BI BDI BJ BEN BL BLM
BM BMU BN BRN BO BOL BQ BES BR BRA BS BHS BT BTN BV BVT BW BWA BY BLR BZ BLZ CA CAN CC CCK
CD COD CF CAF CG COG CH CHE CI CIV CK COK CL CHL CM CMR CN CHN CO COL CR CRI CU CUB CV CPV
CW CUW CX CXR CY CYP CZ CZE DE DEU DJ DJI DK DNK DM DMA DO DOM DZ DZA EC ECU EE EST EG EGY
EH ESH ER ERI ES ESP ET ETH FI FIN FJ FJI FK FLK FM FSM FO FRO FR FRA GA GAB GB GBR GD GRD
GE GEO GF GUF GG GGY GH GHA GI GIB GL GRL GM GMB GN GIN GP GLP GQ GNQ GR GRC GS SGS GT GTM
GU GUM GW GNB GY GUY HK HKG HM HMD HN HND HR HRV HT HTI HU HUN ID IDN IE IRL IL ISR IM IMN
IN IND IO IOT IQ IRQ IR IRN IS ISL IT ITA JE JEY JM JAM JO JOR JP JPN KE KEN KG KGZ KH KHM
KI KIR KM COM KN KNA KP PRK KR KOR KW KWT KY CYM KZ KAZ LA LAO LB LBN LC LCA LI LIE LK LKA
LR LBR LS LSO LT LTU LU LUX LV LVA LY LBY MA MAR MC MCO MD MDA ME MNE MF MAF MG MDG MH MHL
MK MKD ML MLI MM MMR MN MNG MO MAC MP MNP MQ MTQ MR MRT MS MSR MT MLT MU MUS MV MDV MW MWI
MX MEX MY MYS MZ MOZ NA NAM NC NCL NE NER NF NFK NG NGA NI NIC NL NLD NO NOR NP NPL NR NRU
NU NIU NZ NZL OM OMN PA PAN PE PER PF PYF PG PNG PH PHL PK PAK PL POL PM SPM PN PCN PR PRI
PS PSE PT PRT PW PLW PY PRY QA QAT RE REU RO ROU RS SRB RU RUS RW RWA SA SAU SB SLB SC SYC
SD SDN SE SWE SG SGP SH SHN SI SVN SJ SJM SK SVK SL SLE SM SMR SN SEN SO SOM SR SUR SS SSD
ST STP SV SLV SX SXM SY SYR SZ SWZ TC TCA TD TCD TF ATF TG TGO TH THA TJ TJK TK TKL TL TLS
TM TKM TN TUN TO TON TR TUR TT TTO TV TUV TW TWN TZ TZA UA UKR UG UGA UM UMI US USA UY URY
UZ UZB VA VAT VC VCT VE VEN VG VGB VI VIR VN VNM VU VUT WF WLF WS WSM YE YEM YT MYT ZA ZAF
ZM ZMB ZW ZWE
"""

_words = _ISO_3166.split()
#: alpha-2 → alpha-3, e.g. "IE" → "IRL".
ALPHA2_TO_ALPHA3: Mapping[str, str] = dict(zip(_words[0::2], _words[1::2], strict=True))
#: alpha-3 → alpha-2, e.g. "IRL" → "IE".
ALPHA3_TO_ALPHA2: Mapping[str, str] = {a3: a2 for a2, a3 in ALPHA2_TO_ALPHA3.items()}
del _words


class InvalidTaxRate(InvalidInput):
    """A tax-rate entry with an unknown country or a rate that is not a number ≥ 0."""


def country_alpha3(code: str | None) -> str | None:
    """The alpha-3 code of an alpha-2 or alpha-3 code in any case (D3: IE ≡ ie ≡ IRL); else None."""
    if code is None:
        return None
    key = code.strip().upper()
    if key in ALPHA3_TO_ALPHA2:
        return key
    return ALPHA2_TO_ALPHA3.get(key)


def _percent(value: object) -> Decimal:
    """A configured percentage as an exact Decimal; text and int are accepted, binary floats not."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidTaxRate(f"tax rate must be a decimal number, got {value!r}")
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise InvalidTaxRate(f"tax rate must be a decimal number, got {value!r}") from None
    if not rate.is_finite() or rate < 0:
        raise InvalidTaxRate(f"tax rate must be a number of percent ≥ 0, got {value!r}")
    return rate


def tax_on(amount: int, rate_percent: Decimal) -> int:
    """floor(amount × rate / 100), exact rational arithmetic (D3)."""
    exact = Fraction(amount) * Fraction(rate_percent) / 100
    return exact.numerator // exact.denominator


def split_gross(gross: int, rate_percent: Decimal) -> tuple[int, int]:
    """(net, tax) of a gross amount that includes tax at `rate_percent`: net =
    gross × 100 / (100 + rate) rounded half up, tax the rest (so the two add up to gross)."""
    exact = Fraction(gross * 100) / (100 + Fraction(rate_percent))
    net = (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)
    return net, gross - net


@attrs.frozen
class TaxRates:
    """The configured `tax-rate` map, keyed by alpha-3 country code, percent as Decimal."""

    by_alpha3: Mapping[str, Decimal] = attrs.field(factory=dict)

    @classmethod
    def from_config(cls, entries: Mapping[str, object]) -> TaxRates:
        """Build from config (`IE: 23` or `IRL: "23"`); unknown countries and bad rates fail."""
        table: dict[str, Decimal] = {}
        for code, value in entries.items():
            alpha3 = country_alpha3(code)
            if alpha3 is None:
                raise InvalidTaxRate(f"unknown ISO-3166 country code in tax rates: {code!r}")
            rate = _percent(value)
            if table.get(alpha3, rate) != rate:
                raise InvalidTaxRate(f"two different tax rates for {alpha3}")
            table[alpha3] = rate
        return cls(table)

    def rate_for(self, country: str | None) -> Decimal:
        """The percent for a country; absent, unknown or unconfigured countries pay 0 (R8.2)."""
        alpha3 = country_alpha3(country)
        if alpha3 is None:
            return Decimal(0)
        return self.by_alpha3.get(alpha3, Decimal(0))

    def tax_for(self, amount: int, country: str | None) -> int:
        """Tax on an amount in charged smallest units (msat or cents), floored (D3, R8.3)."""
        if amount < 0:
            raise InvalidInput(f"cannot tax a negative amount: {amount}")
        return tax_on(amount, self.rate_for(country))


NO_TAX = TaxRates()


#: a quote's metadata key for the tax percent it charged (a string; "0" when untaxed), so an
#: invoice never has to infer the rate from amounts that account credit reduced
TAX_RATE_KEY = "tax_rate"


def recorded_tax_rate(meta: Mapping[str, object], key: str = TAX_RATE_KEY) -> Decimal | None:
    """The tax percent a quote's metadata records under `key` (`TAX_RATE_KEY`: the one it
    charged), or None without one."""
    raw = meta.get(key)
    if not isinstance(raw, str):
        return None
    try:
        return _percent(raw)
    except InvalidTaxRate:
        return None


#: a quote's metadata key for the tax percent on money its payer keeps as account credit
#: (a string), when it differs from the one the quote charged: an upgrade charges none, but
#: its overpaid excess prepays the buyer's taxed supplies (0 under reverse charge or in an
#: untaxed country), so it bears the rate a renewal would charge
CREDIT_TAX_RATE_KEY = "credit_tax_rate"


#: a quote's metadata key for whether it was reverse charged (a bool: no tax charged because
#: the buyer accounts for the VAT), decided with `TAX_RATE_KEY` from the buyer as quoted
REVERSE_CHARGE_KEY = "reverse_charge"


def recorded_reverse_charge(meta: Mapping[str, object]) -> bool | None:
    """Whether a quote's metadata records it reverse charged, or None without a record."""
    raw = meta.get(REVERSE_CHARGE_KEY)
    return raw if isinstance(raw, bool) else None
