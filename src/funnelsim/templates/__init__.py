"""The bundled scenarios, shipped in the package so ``funnelsim init --template NAME``
works for a pip user; ``scenarios/`` in the repository holds the same names.

The YAML files sit beside this module and are read with :mod:`importlib.resources`
(:func:`funnelsim.scaffold.template_text`); this module only names them, so the
command line lists them without importing anything heavy.
"""

NAMES = (
    "checkout",
    "leads",
    "rean",
    "page_speed",
    "purchase_path",
    "local_business",
    "sales_funnel",
    "lead_funnel",
    "login_tradeoff",
    "lead_response",
    "lead_magnet",
)
"""Every bundled scenario, in the order ``funnelsim list`` shows them."""
