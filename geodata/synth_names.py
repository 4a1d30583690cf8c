"""Synthetic Chinese names for the demo: communities, villages, people, roads, phones.

All names are invented from common characters; any match with a real person,
village or company is a coincidence. Phone numbers use an all-zero block
(1xx-0000-xxxx) so they look valid but are recognisably fake.
"""

from __future__ import annotations

import numpy as np

SURNAMES = (
    "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆范金石贾夏付方白邹孟秦邱尹薛闫段侯史陶贺顾毛郝"
    "邵万钱武孔颜颛仲满"
)
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红海鹏宇浩凯鑫婷雪琳晨"
    "阳振峰文斌辉庆德福春梅荣成立新利忠民金凤香云燕晓东亮波彬"
)
COMMUNITY_WORDS = (
    "建设",
    "文化",
    "府前",
    "九州",
    "中御桥",
    "少陵",
    "龙泉",
    "金桥",
    "青年",
    "和平",
    "幸福",
    "兴华",
    "东方",
    "光明",
    "友谊",
    "新华",
    "铁路",
    "车站",
    "花园",
    "翠园",
    "东关",
    "西关",
    "南关",
    "北关",
    "滨河",
    "御桥",
    "玉泉",
    "阳光",
    "惠民",
    "瑞和",
    "丰兴",
    "盛世",
    "锦绣",
    "紫金",
    "康城",
    "颐和",
    "泰和",
    "崇文",
    "尚德",
    "安居",
    "永安",
    "永兴",
    "永和",
    "太平",
    "宏达",
    "嘉园",
    "福源",
    "龙城",
    "文昌",
    "书院",
    "东城",
    "西城",
    "南城",
    "新城",
    "青莲",
    "兴业",
    "宜居",
    "矿建",
    "工人",
    "复兴",
)
DIRECTIONS = ("东", "西", "南", "北", "新")
VILLAGE_PREFIXES = (
    "",
    "",
    "",
    "",
    "东",
    "西",
    "南",
    "北",
    "前",
    "后",
    "大",
    "小",
    "中",
)
VILLAGE_SUFFIXES = (
    "庄",
    "家庄",
    "村",
    "屯",
    "楼",
    "集",
    "营",
    "店",
    "官庄",
    "辛庄",
    "家村",
    "寨",
    "园",
    "家洼",
)
# Urban street names: north-south, then east-west. Invented but typical of the region.
NS_ROADS = (
    "龙桥路",
    "建设路",
    "文化路",
    "九州大道",
    "少陵路",
    "青年路",
    "兴华路",
    "东方路",
    "滨河路",
    "铁路西街",
)
EW_ROADS = (
    "中御桥路",
    "府前路",
    "鼓楼街",
    "西关大街",
    "兴隆路",
    "九州路",
    "金桥路",
    "泗河路",
    "新兖路",
    "迎宾大道",
)
PHONE_PREFIXES = ("135", "138", "139", "150", "158", "186", "187", "189")
# Digits 4-7 of every phone number: an unallocated all-zero block marks them fake.
PHONE_FAKE_BLOCK = "0000"
CHINESE_ORDINALS = "一二三四五六七八九十"


def unique_names(candidates: list[str], taken: set[str]) -> list[str]:
    """Return the candidates, each made unique against ``taken`` (which is updated)."""
    out = []
    for name in candidates:
        base = short(name)
        final, n = name, 2
        while final in taken:
            final = f"{base}第{ordinal(n)}{name[len(base) :]}"
            n += 1
        taken.add(final)
        out.append(final)
    return out


def community_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """Return n distinct urban community names ("建设路社区" style)."""
    words = list(COMMUNITY_WORDS)
    # Direction prefixes only on words that do not start with one already.
    pool = words + [
        d + w for d in DIRECTIONS for w in words if len(w) == 2 and w[0] not in "东西南北新"
    ]
    pool = [w for w in pool if f"{w}社区" not in taken]
    picks = rng.permutation(len(pool))
    # Should a town ever need more names than the pool holds, repeats get "第二".
    return unique_names([f"{pool[picks[i % len(pool)]]}社区" for i in range(n)], taken)


def village_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """Return n distinct village names ("前李屯村" style)."""
    out: list[str] = []
    while len(out) < n:
        prefix = VILLAGE_PREFIXES[rng.integers(len(VILLAGE_PREFIXES))]
        surname = SURNAMES[rng.integers(len(SURNAMES))]
        suffix = VILLAGE_SUFFIXES[rng.integers(len(VILLAGE_SUFFIXES))]
        name = f"{prefix}{surname}{suffix}" + ("" if suffix.endswith("村") else "村")
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    """Return n synthetic Chinese personal names (one- or two-character given names)."""
    # Common surnames dominate in Shandong, so weight the first ones more.
    w = 1.0 / np.arange(1, len(SURNAMES) + 1) ** 0.8
    sur = rng.choice(len(SURNAMES), size=n, p=w / w.sum())
    first = rng.integers(len(GIVEN_CHARS), size=n)
    second = rng.integers(len(GIVEN_CHARS), size=n)
    two = rng.random(n) < 0.7
    return [
        SURNAMES[s] + GIVEN_CHARS[a] + (GIVEN_CHARS[b] if t else "")
        for s, a, b, t in zip(sur, first, second, two, strict=True)
    ]


def fake_phones(rng: np.random.Generator, n: int) -> list[str]:
    """Return n distinct 11-digit mobile numbers of the form 1xx-0000-xxxx."""
    capacity = len(PHONE_PREFIXES) * 10_000
    if n > capacity:
        raise ValueError(f"at most {capacity} fake phone numbers are available")
    picks = rng.choice(capacity, size=n, replace=False)
    return [f"{PHONE_PREFIXES[p // 10_000]}{PHONE_FAKE_BLOCK}{p % 10_000:04d}" for p in picks]


def short(name: str) -> str:
    """Return a place name without its administrative suffix (社区/村/街道/镇)."""
    for suffix in ("街道", "社区", "村", "镇"):
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def ordinal(n: int) -> str:
    """Return a Chinese ordinal for 1..99 (一, 二, ..., 十一, 二十)."""
    if n <= 10:
        return CHINESE_ORDINALS[n - 1]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CHINESE_ORDINALS[tens - 1]
    return head + "十" + (CHINESE_ORDINALS[ones - 1] if ones else "")
