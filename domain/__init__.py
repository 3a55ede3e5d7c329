"""Pure billing rules of lnvps: money, intervals, pricing, upgrades and subscription states."""
