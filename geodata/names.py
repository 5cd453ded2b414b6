"""Make synthetic Chinese names for villages, people and roads (deterministic given an rng)."""

from __future__ import annotations

import numpy as np

SURNAMES = list(
    "张王李赵刘陈杨黄孙周吴徐马胡朱郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾田董袁潘蒋蔡杜程苏魏吕丁任沈姚卢姜崔"
    "谭陆范金石贾夏付方白孟秦邱尹薛段侯史陶贺顾毛郝邵孔齐耿房牛葛鲁庞"
)
GIVEN = list("国建军华平明志伟强磊洋勇杰涛斌超刚海波辉鹏飞文春秀英丽敏静红霞艳玲芳燕桂兰凤云")
_PLAIN_SUFFIX = ["家村", "庄", "家庄", "集", "店", "家楼", "营", "家洼", "屯", "家寨", "桥", "官庄"]
_HILL_SUFFIX = ["峪", "家岭", "山", "家坡", "沟", "家峪"]
_PREFIX = ["东", "西", "南", "北", "前", "后", "大", "小", "上", "下"]
_NUMERALS = "一二三四五六七八九十"


def village_names(rng: np.random.Generator, hills: np.ndarray) -> list[str]:
    """Return one unique village name per entry of ``hills`` (True: a hill-country name)."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for hill in hills:
        s = SURNAMES[rng.integers(len(SURNAMES))]
        suffixes = _HILL_SUFFIX if hill else _PLAIN_SUFFIX
        suf = suffixes[rng.integers(len(suffixes))]
        roll = rng.random()
        if roll < 0.25:
            name = _PREFIX[rng.integers(len(_PREFIX))] + s + suf
        elif roll < 0.35:
            name = s + SURNAMES[rng.integers(len(SURNAMES))] + "村"
        else:
            name = s + suf
        n = seen.get(name, 0)
        seen[name] = n + 1
        if n:
            name = name + _NUMERALS[min(n, len(_NUMERALS)) - 1] + "村"
            while name in seen:  # a numbered name that already exists
                name = name[:-1] + "新村"
            seen[name] = 1
        out.append(name)
    return out


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    """Return ``n`` synthetic person names (surname + one or two given characters)."""
    sur = rng.integers(len(SURNAMES), size=n)
    g1 = rng.integers(len(GIVEN), size=n)
    g2 = rng.integers(len(GIVEN), size=n)
    two = rng.random(n) < 0.6
    return [SURNAMES[a] + GIVEN[b] + (GIVEN[c] if t else "") for a, b, c, t in zip(sur, g1, g2, two, strict=True)]


def masked_phones(rng: np.random.Generator, n: int) -> list[str]:
    """Return ``n`` masked mobile numbers such as 138****1234."""
    heads = np.array(["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
                      "155", "157", "158", "159", "170", "176", "177", "180", "181", "182", "185", "186",
                      "187", "188", "189"])
    h = heads[rng.integers(len(heads), size=n)]
    tail = rng.integers(0, 10000, size=n)
    return [f"{a}****{b:04d}" for a, b in zip(h, tail, strict=True)]
