"""HPO age-of-onset terms as the youngest age a feature with that onset can be documented at.

An annotation's onset is when the feature begins in the disease (HPO annotation format,
column ``Onset``), so it bounds the visit age from below only: a feature persists after its
onset. Ages are whole years, the lower end of each term's definition in ``hp.obo``. Onset
terms before the first birthday (antenatal, fetal, congenital, neonatal, infantile) and open
ones (pediatric: before 16) bound nothing and are left out.
"""

from __future__ import annotations

#: HPO onset term -> lowest age in years its definition allows
ONSET_MIN_AGE: dict[str, int] = {
    "HP:0011463": 1,  # Childhood onset: between 1 and 5 years
    "HP:0003621": 5,  # Juvenile onset: between 5 and 15 years
    "HP:0003581": 16,  # Adult onset: 16 years or later
    "HP:0011462": 16,  # Young adult onset: between 16 and 40 years
    "HP:0025708": 16,  # Early young adult onset: 16 to under 19 years
    "HP:0025709": 19,  # Intermediate young adult onset: 19 to under 25 years
    "HP:0025710": 25,  # Late young adult onset: 25 to under 40 years
    "HP:0003596": 40,  # Middle age onset: 40 to 60 years
    "HP:0003584": 60,  # Late onset: after 60 years
}


def onset_min_age(min_age: int | None, onset: str | None) -> int | None:
    """``min_age`` raised to the youngest age ``onset`` allows (either may be None)."""
    bound = ONSET_MIN_AGE.get(onset or "")
    if bound is None:
        return min_age
    return bound if min_age is None else max(min_age, bound)
