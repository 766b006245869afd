"""The labelled evaluation set for matching, and its figures.

    .venv/bin/python bench/matching_eval.py [--offers-at 100000] [--write-set]

The set (`bench/data/matching-eval.json`, written by `--write-set` from the niches below)
is what an adviser would mark: 20 technology niches in pairs that share a taxonomy keyword
but answer different needs (desalination membranes / dialysis membranes, weld-seam vision /
shipyard welding robots, ...), each with offers written in English, Chinese, Korean, Hebrew
and Spanish and requests in English and Chinese. A request's relevant offers are those of
its own niche; the sibling niche is its hard negative (same keyword, wrong need). 100
requests and 300 offers.

The figures (written to `bench/results/matching.json` and printed): for every request,
the suggestions of `transfer.matching.suggestions` on a hub holding the set; success@5 (the
share of requests with a relevant offer in the top 5), precision@5, recall@10, the share of
the top 5 from the hard-negative niche; the same again with `--offers-at` more offers
(benchlib's: random text of the same vocabulary domain and random keywords) in the store;
and the time to match one request among them, p50/p95.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402

from hub.site import init_hub  # noqa: E402
from sync.clock import Stamp  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.envelope import Version, make_version  # noqa: E402
from sync.ids import new_record_id  # noqa: E402
from sync.kinds import Kind, create_change, make_content, pins_of  # noqa: E402
from sync.site import Site  # noqa: E402
from transfer.duplicates import candidates  # noqa: E402
from transfer.matching import suggestions  # noqa: E402
from transfer.records import KINDS, LISTING, REQUEST  # noqa: E402

SET = ROOT / "bench" / "data" / "matching-eval.json"
T = "tt-2026.1"

# niche: keywords, market keywords, partnership types offered, the request's type, and per
# language two ways an offer says what it is; requests in English (3) and Chinese (2).
NICHES: dict[str, dict[str, Any]] = {
    "desal-membrane": {
        "kw": ["membranes", "desalination"],
        "mk": ["utilities"],
        "pt": ["licence"],
        "rt": "technology",
        "en": [
            "Low-energy seawater desalination membrane",
            "Graphene-oxide reverse osmosis membrane for brackish water",
        ],
        "zh": ["低能耗海水淡化膜", "用于苦咸水淡化的氧化石墨烯反渗透膜"],
        "ko": ["저에너지 해수 담수화 분리막", "기수 담수화용 역삼투 분리막"],
        "he": ["ממברנה להתפלת מי ים בצריכת אנרגיה נמוכה", "ממברנת אוסמוזה הפוכה להתפלת מים מליחים"],
        "es": [
            "Membrana de desalinización de agua de mar de bajo consumo",
            "Membrana de ósmosis inversa para agua salobre",
        ],
        "req_en": [
            "Seeking seawater desalination membranes for a coastal plant",
            "Reverse osmosis membrane technology to cut desalination energy",
            "Licence for brackish water desalination membranes",
        ],
        "req_zh": ["寻求海水淡化膜技术", "需要低能耗反渗透淡化膜"],
    },
    "dialysis-membrane": {
        "kw": ["membranes", "medical-devices"],
        "mk": ["healthcare"],
        "pt": ["licence", "rnd-cooperation"],
        "rt": "technology",
        "en": ["Hollow-fibre membrane for haemodialysis", "Biocompatible dialysis membrane with low fouling"],
        "zh": ["血液透析用中空纤维膜", "低污染生物相容透析膜"],
        "ko": ["혈액투석용 중공사막", "생체적합성 투석막"],
        "he": ["ממברנת סיבים חלולים לדיאליזה", "ממברנת דיאליזה תואמת ביולוגית"],
        "es": ["Membrana de fibra hueca para hemodiálisis", "Membrana de diálisis biocompatible"],
        "req_en": [
            "Seeking hollow-fibre dialysis membrane technology",
            "Haemodialysis membrane supplier for kidney care devices",
            "Biocompatible membranes for dialysis machines",
        ],
        "req_zh": ["寻求血液透析膜技术", "需要中空纤维透析膜"],
    },
    "weld-vision": {
        "kw": ["robotics", "artificial-intelligence"],
        "mk": ["automotive"],
        "pt": ["joint-venture", "technical-cooperation"],
        "rt": "partner",
        "en": [
            "Seam-tracking machine vision for robotic welding",
            "AI camera that guides welding robots along the seam",
        ],
        "zh": ["机器人焊接焊缝跟踪视觉系统", "引导焊接机器人的人工智能相机"],
        "ko": ["로봇 용접 이음매 추적 비전", "용접 로봇용 인공지능 카메라"],
        "he": ["ראייה ממוחשבת למעקב תפר בריתוך רובוטי", "מצלמת בינה מלאכותית המנחה רובוטי ריתוך"],
        "es": [
            "Visión artificial de seguimiento de costura para soldadura robótica",
            "Cámara con IA para robots de soldadura",
        ],
        "req_en": [
            "Machine-vision partner for welding robots",
            "Seam-tracking camera for robotic welding lines",
            "AI vision to guide welding robots on car bodies",
        ],
        "req_zh": ["寻求焊接机器人视觉合作伙伴", "需要焊缝跟踪机器视觉"],
    },
    "ship-welding": {
        "kw": ["robotics"],
        "mk": ["maritime"],
        "pt": ["acquisition", "commercial-with-technical-assistance"],
        "rt": "technology",
        "en": ["Gantry welding robots for shipyards", "Heavy-plate welding robot for hull blocks"],
        "zh": ["船厂龙门焊接机器人", "船体分段厚板焊接机器人"],
        "ko": ["조선소용 갠트리 용접 로봇", "선체 블록 후판 용접 로봇"],
        "he": ["רובוטי ריתוך גשריים למספנות", "רובוט ריתוך לוחות עבים לגוף אונייה"],
        "es": ["Robots de soldadura de pórtico para astilleros", "Robot de soldadura de chapa gruesa para cascos"],
        "req_en": [
            "Seeking welding robots for a shipyard",
            "Gantry welding automation for hull blocks",
            "Heavy plate welding robots for ship building",
        ],
        "req_zh": ["寻求船厂焊接机器人", "需要船体分段焊接自动化"],
    },
    "solid-battery": {
        "kw": ["batteries", "advanced-materials"],
        "mk": ["automotive"],
        "pt": ["licence", "joint-venture"],
        "rt": "technology",
        "en": ["Solid-state battery electrolyte", "Sulfide solid electrolyte for lithium metal cells"],
        "zh": ["固态电池电解质", "锂金属电池用硫化物固态电解质"],
        "ko": ["전고체 배터리 전해질", "리튬 금속 전지용 황화물 고체 전해질"],
        "he": ["אלקטרוליט לסוללת מצב מוצק", "אלקטרוליט מוצק גופרתי לתאי ליתיום מתכתי"],
        "es": ["Electrolito para baterías de estado sólido", "Electrolito sólido de sulfuro para celdas de litio"],
        "req_en": [
            "Solid-state electrolyte technology for EV batteries",
            "Seeking sulfide solid electrolyte licence",
            "Solid-state battery cells for electric vehicles",
        ],
        "req_zh": ["寻求固态电池电解质技术", "需要硫化物固态电解质"],
    },
    "battery-recycling": {
        "kw": ["batteries", "recycling"],
        "mk": ["environment"],
        "pt": ["joint-venture", "licence"],
        "rt": "partner",
        "en": ["Hydrometallurgical recycling of lithium-ion batteries", "Black mass recovery of cobalt and nickel"],
        "zh": ["锂离子电池湿法冶金回收", "黑粉中钴镍回收"],
        "ko": ["리튬이온 배터리 습식 제련 재활용", "블랙매스 코발트 니켈 회수"],
        "he": ["מיחזור הידרומטלורגי של סוללות ליתיום-יון", "השבת קובלט וניקל מאבקה שחורה"],
        "es": ["Reciclaje hidrometalúrgico de baterías de ion litio", "Recuperación de cobalto y níquel de masa negra"],
        "req_en": [
            "Partner for lithium-ion battery recycling plant",
            "Recovery of cobalt and nickel from spent batteries",
            "Battery recycling process for black mass",
        ],
        "req_zh": ["寻求锂电池回收合作伙伴", "需要废旧电池钴镍回收工艺"],
    },
    "drip-sensor": {
        "kw": ["precision-irrigation", "sensors"],
        "mk": ["agriculture"],
        "pt": ["licence", "commercial-with-technical-assistance"],
        "rt": "technology",
        "en": ["Drip-irrigation flow sensor", "Soil moisture sensor that steers drip irrigation"],
        "zh": ["滴灌流量传感器", "控制滴灌的土壤湿度传感器"],
        "ko": ["점적 관개 유량 센서", "점적 관개 제어 토양 수분 센서"],
        "he": ["חיישן זרימה להשקיה בטפטוף", "חיישן לחות קרקע לניהול השקיה בטפטוף"],
        "es": ["Sensor de caudal para riego por goteo", "Sensor de humedad del suelo para riego por goteo"],
        "req_en": [
            "Soil moisture sensors for drip irrigation in orchards",
            "Flow sensors for drip irrigation lines",
            "Precision irrigation sensors for greenhouse farms",
        ],
        "req_zh": ["寻求滴灌传感器技术", "需要土壤湿度传感器"],
    },
    "drone-spraying": {
        "kw": ["precision-irrigation", "drones"],
        "mk": ["agriculture"],
        "pt": ["commercial-with-technical-assistance", "acquisition"],
        "rt": "technology",
        "en": ["Crop-spraying drone with variable-rate nozzles", "Agricultural drone for pesticide spraying"],
        "zh": ["变量喷洒植保无人机", "农药喷洒农业无人机"],
        "ko": ["가변 살포 방제 드론", "농약 살포용 농업 드론"],
        "he": ["רחפן ריסוס גידולים עם נחירים משתנים", "רחפן חקלאי לריסוס חומרי הדברה"],
        "es": ["Dron de fumigación con boquillas de dosis variable", "Dron agrícola para pulverizar pesticidas"],
        "req_en": [
            "Crop-spraying drones for rice fields",
            "Agricultural drone for pesticide application",
            "Variable-rate spraying drone technology",
        ],
        "req_zh": ["寻求植保无人机技术", "需要农药喷洒无人机"],
    },
    "pv-cleaning": {
        "kw": ["solar-energy", "robotics"],
        "mk": ["energy"],
        "pt": ["commercial-with-technical-assistance", "licence"],
        "rt": "technology",
        "en": ["Waterless cleaning robot for solar panels", "Autonomous robot that cleans photovoltaic arrays"],
        "zh": ["光伏板无水清洁机器人", "自主清扫光伏阵列的机器人"],
        "ko": ["태양광 패널 무수 세척 로봇", "태양광 어레이 자율 청소 로봇"],
        "he": ["רובוט ניקוי ללא מים לפאנלים סולאריים", "רובוט אוטונומי לניקוי מערכים פוטו-וולטאיים"],
        "es": ["Robot de limpieza sin agua para paneles solares", "Robot autónomo que limpia plantas fotovoltaicas"],
        "req_en": [
            "Cleaning robots for solar panels in the desert",
            "Waterless photovoltaic panel cleaning",
            "Autonomous solar farm cleaning robot",
        ],
        "req_zh": ["寻求光伏板清洁机器人", "需要无水光伏清洗技术"],
    },
    "molten-salt": {
        "kw": ["solar-energy", "energy-efficiency"],
        "mk": ["utilities"],
        "pt": ["rnd-cooperation", "joint-venture"],
        "rt": "partner",
        "en": ["Molten-salt thermal storage for solar plants", "Concentrated solar power with molten salt storage"],
        "zh": ["太阳能电站熔盐储热", "熔盐储能光热发电"],
        "ko": ["태양열 발전소용 용융염 축열", "용융염 저장 집광형 태양열 발전"],
        "he": ["אגירה תרמית במלח מותך לתחנות סולאריות", "אנרגיה סולארית מרוכזת עם אגירת מלח מותך"],
        "es": [
            "Almacenamiento térmico en sales fundidas para plantas solares",
            "Termosolar de concentración con sales fundidas",
        ],
        "req_en": [
            "Partner for molten salt thermal storage",
            "Concentrated solar power storage in molten salts",
            "Thermal energy storage for a solar thermal plant",
        ],
        "req_zh": ["寻求熔盐储热合作伙伴", "需要光热发电储热技术"],
    },
    "edge-chip": {
        "kw": ["semiconductors", "artificial-intelligence"],
        "mk": ["manufacturing"],
        "pt": ["licence", "commercial-with-technical-assistance"],
        "rt": "technology",
        "en": ["Edge AI chip for predictive maintenance", "Low-power neural accelerator for vibration analytics"],
        "zh": ["用于预测性维护的边缘人工智能芯片", "振动分析低功耗神经网络加速器"],
        "ko": ["예측 정비용 엣지 AI 칩", "진동 분석용 저전력 신경망 가속기"],
        "he": ["שבב בינה מלאכותית בקצה לתחזוקה חזויה", "מאיץ עצבי בהספק נמוך לניתוח רעידות"],
        "es": [
            "Chip de IA en el borde para mantenimiento predictivo",
            "Acelerador neuronal de bajo consumo para vibraciones",
        ],
        "req_en": [
            "Edge AI chip for predictive maintenance of motors",
            "Low-power neural accelerator for factory sensors",
            "Predictive maintenance chip with vibration analytics",
        ],
        "req_zh": ["寻求预测性维护边缘芯片", "需要低功耗人工智能芯片"],
    },
    "power-gan": {
        "kw": ["semiconductors", "energy-efficiency"],
        "mk": ["energy"],
        "pt": ["licence", "investment"],
        "rt": "technology",
        "en": ["Gallium nitride power transistor for inverters", "GaN power devices for fast chargers"],
        "zh": ["用于逆变器的氮化镓功率晶体管", "快充氮化镓功率器件"],
        "ko": ["인버터용 질화갈륨 전력 트랜지스터", "고속 충전기용 GaN 전력 소자"],
        "he": ["טרנזיסטור הספק מגליום ניטריד לממירים", "רכיבי הספק GaN למטענים מהירים"],
        "es": [
            "Transistor de potencia de nitruro de galio para inversores",
            "Dispositivos de potencia GaN para cargadores",
        ],
        "req_en": [
            "Gallium nitride power transistors for solar inverters",
            "GaN power devices for fast chargers",
            "Power semiconductor technology for inverters",
        ],
        "req_zh": ["寻求氮化镓功率器件技术", "需要逆变器功率晶体管"],
    },
    "green-hydrogen": {
        "kw": ["hydrogen", "energy-efficiency"],
        "mk": ["energy"],
        "pt": ["joint-venture", "investment"],
        "rt": "investment",
        "en": ["PEM electrolyser stack for green hydrogen", "Low-iridium catalyst for water electrolysis"],
        "zh": ["绿氢质子交换膜电解槽", "低铱水电解催化剂"],
        "ko": ["그린 수소용 PEM 수전해 스택", "저이리듐 수전해 촉매"],
        "he": ["ערימת אלקטרולייזר PEM למימן ירוק", "זרז דל אירידיום לאלקטרוליזה של מים"],
        "es": ["Pila de electrolizador PEM para hidrógeno verde", "Catalizador con poco iridio para electrólisis"],
        "req_en": [
            "Investment in PEM electrolyser production for green hydrogen",
            "Green hydrogen electrolysis project seeking investors",
            "Water electrolysis catalyst for hydrogen production",
        ],
        "req_zh": ["寻求绿氢电解槽投资", "需要水电解制氢催化剂"],
    },
    "hydrogen-storage": {
        "kw": ["hydrogen", "advanced-materials"],
        "mk": ["logistics"],
        "pt": ["licence", "rnd-cooperation"],
        "rt": "technology",
        "en": ["Metal hydride tank for hydrogen storage", "Type IV composite hydrogen pressure vessel"],
        "zh": ["金属氢化物储氢罐", "四型复合材料高压储氢瓶"],
        "ko": ["금속 수소화물 수소 저장 탱크", "4형 복합재 고압 수소 용기"],
        "he": ["מכל הידריד מתכתי לאחסון מימן", "מיכל לחץ מרוכב למימן מסוג 4"],
        "es": ["Depósito de hidruro metálico para almacenar hidrógeno", "Recipiente compuesto tipo IV para hidrógeno"],
        "req_en": [
            "Hydrogen storage tanks for trucks",
            "Metal hydride hydrogen storage technology",
            "Composite pressure vessels for hydrogen",
        ],
        "req_zh": ["寻求储氢罐技术", "需要高压储氢瓶"],
    },
    "glass-recycling": {
        "kw": ["recycling", "advanced-materials"],
        "mk": ["construction"],
        "pt": ["licence", "technical-cooperation"],
        "rt": "technology",
        "en": ["Glass recycling by cold sintering", "Building tiles from recycled glass powder"],
        "zh": ["冷烧结玻璃回收", "再生玻璃粉制建筑瓷砖"],
        "ko": ["저온 소결 유리 재활용", "재활용 유리 분말 건축 타일"],
        "he": ["מיחזור זכוכית בסינטור קר", "אריחי בנייה מאבקת זכוכית ממוחזרת"],
        "es": ["Reciclaje de vidrio por sinterizado en frío", "Baldosas de construcción de polvo de vidrio reciclado"],
        "req_en": [
            "Recycled glass building materials",
            "Cold sintering of waste glass",
            "Technology to turn waste glass into tiles",
        ],
        "req_zh": ["寻求废玻璃回收技术", "需要再生玻璃建材"],
    },
    "textile-recycling": {
        "kw": ["recycling", "textiles"],
        "mk": ["consumer-goods"],
        "pt": ["joint-venture", "technical-cooperation"],
        "rt": "partner",
        "en": ["Chemical recycling of polyester textiles", "Fibre-to-fibre recycling of cotton blends"],
        "zh": ["涤纶纺织品化学回收", "棉混纺纤维再生"],
        "ko": ["폴리에스터 섬유 화학적 재활용", "면 혼방 섬유 재활용"],
        "he": ["מיחזור כימי של טקסטיל פוליאסטר", "מיחזור סיב לסיב של תערובות כותנה"],
        "es": ["Reciclaje químico de textiles de poliéster", "Reciclaje fibra a fibra de mezclas de algodón"],
        "req_en": [
            "Partner for polyester textile recycling",
            "Fibre-to-fibre recycling of used clothing",
            "Chemical recycling process for textile waste",
        ],
        "req_zh": ["寻求纺织品回收合作伙伴", "需要涤纶化学回收工艺"],
    },
    "food-coating": {
        "kw": ["food-processing", "advanced-materials"],
        "mk": ["food-and-beverage"],
        "pt": ["licence", "rnd-cooperation"],
        "rt": "technology",
        "en": ["Biodegradable food-contact coating", "Compostable barrier coating for paper packaging"],
        "zh": ["可生物降解食品接触涂层", "纸包装可堆肥阻隔涂层"],
        "ko": ["생분해성 식품 접촉 코팅", "종이 포장용 퇴비화 차단 코팅"],
        "he": ["ציפוי מתכלה למגע עם מזון", "ציפוי מחסום קומפוסטבילי לאריזות נייר"],
        "es": [
            "Recubrimiento biodegradable para contacto con alimentos",
            "Recubrimiento barrera compostable para envases",
        ],
        "req_en": [
            "Biodegradable coating for food packaging",
            "Compostable barrier coating for paper cups",
            "Plastic-free food-contact coating",
        ],
        "req_zh": ["寻求可降解食品包装涂层", "需要纸杯可堆肥涂层"],
    },
    "food-sensor": {
        "kw": ["food-processing", "sensors"],
        "mk": ["food-and-beverage"],
        "pt": ["commercial-with-technical-assistance", "licence"],
        "rt": "technology",
        "en": ["Spoilage sensor for cold-chain food", "Freshness indicator label for packaged meat"],
        "zh": ["冷链食品腐败传感器", "包装肉类新鲜度指示标签"],
        "ko": ["콜드체인 식품 부패 센서", "포장육 신선도 표시 라벨"],
        "he": ["חיישן קלקול למזון בשרשרת הקירור", "תווית מחוון טריות לבשר ארוז"],
        "es": ["Sensor de deterioro para alimentos en cadena de frío", "Etiqueta indicadora de frescura para carne"],
        "req_en": [
            "Freshness sensors for cold-chain logistics",
            "Spoilage indicator labels for meat",
            "Food freshness monitoring in the cold chain",
        ],
        "req_zh": ["寻求冷链新鲜度传感器", "需要肉类新鲜度指示标签"],
    },
    "trial-matching": {
        "kw": ["software", "big-data"],
        "mk": ["healthcare"],
        "pt": ["rnd-cooperation", "licence"],
        "rt": "partner",
        "en": ["Federated clinical-trial matching", "Privacy-preserving patient recruitment for trials"],
        "zh": ["联邦临床试验匹配", "保护隐私的临床试验患者招募"],
        "ko": ["연합 임상시험 매칭", "개인정보 보호 임상시험 환자 모집"],
        "he": ["התאמה פדרטיבית לניסויים קליניים", "גיוס מטופלים לניסויים עם שמירת פרטיות"],
        "es": ["Emparejamiento federado de ensayos clínicos", "Reclutamiento de pacientes con privacidad"],
        "req_en": [
            "Partner for clinical trial patient matching",
            "Federated data platform for trial recruitment",
            "Privacy-preserving clinical trial matching software",
        ],
        "req_zh": ["寻求临床试验匹配合作伙伴", "需要临床试验患者招募平台"],
    },
    "grid-forecast": {
        "kw": ["software", "smart-grid"],
        "mk": ["utilities"],
        "pt": ["licence", "commercial-with-technical-assistance"],
        "rt": "technology",
        "en": ["Load forecasting software for distribution grids", "Grid congestion prediction for utilities"],
        "zh": ["配电网负荷预测软件", "电网阻塞预测"],
        "ko": ["배전망 부하 예측 소프트웨어", "전력망 혼잡 예측"],
        "he": ["תוכנת חיזוי עומסים לרשתות חלוקה", "חיזוי עומס יתר ברשת לחברות חשמל"],
        "es": ["Software de previsión de carga para redes de distribución", "Predicción de congestión de red"],
        "req_en": [
            "Load forecasting for a distribution grid operator",
            "Grid congestion prediction software",
            "Forecasting tool for smart grid operations",
        ],
        "req_zh": ["寻求配电网负荷预测软件", "需要电网阻塞预测"],
    },
}
QUALIFIERS = {
    "en": ["", "for industrial use", "pilot proven"],
    "zh": ["", "工业应用", "中试验证"],
    "ko": ["", "산업용", "실증 완료"],
    "he": ["", "לשימוש תעשייתי", "מוכח בפיילוט"],
    "es": ["", "para uso industrial", "probado en piloto"],
}


def build_set() -> dict[str, Any]:
    """Offers (15 a niche: three in each of five languages) and requests (five a niche),
    with each request's relevant offers (its niche's) and hard negatives (its sibling's)."""
    names = list(NICHES)
    offers, requests = [], []
    for n, (name, niche) in enumerate(NICHES.items()):
        sibling = names[n ^ 1]
        for lang in ("en", "zh", "ko", "he", "es"):
            for i, qualifier in enumerate(QUALIFIERS[lang]):
                title = niche[lang][i % 2]
                offers.append(
                    {
                        "id": f"offer-{name}-{lang}-{i}",
                        "niche": name,
                        "language": lang,
                        "title": f"{title} {qualifier}".strip(),
                        "summary": niche[lang][(i + 1) % 2],
                        "keywords": niche["kw"],
                        "market_keywords": niche["mk"],
                        "partnership_types": niche["pt"],
                        "trl": 4 + i * 2,
                    }
                )
        for i, text in enumerate([*niche["req_en"], *niche["req_zh"]]):
            requests.append(
                {
                    "id": f"request-{name}-{i}",
                    "niche": name,
                    "title": text,
                    "sought": text,
                    "request_type": niche["rt"],
                    "keywords": niche["kw"][:1] if i % 2 else niche["kw"],
                    "sectors": niche["mk"],
                    "relevant_niche": name,
                    "hard_negative_niche": sibling,
                }
            )
    return {"offers": offers, "requests": requests}


LABS = ["a university lab in Haifa", "a start-up in Daejeon", "an institute in Valencia", "a spin-off in Leuven"]


def build_duplicates() -> dict[str, Any]:
    """For each niche, an original offer and five others an adviser would label: a near
    copy listed by another centre, a differently worded offer naming the same patent, a
    Spanish listing whose English translation is the original, all duplicates; the sibling
    niche's offer (same keyword) and another offer of the same niche from another lab, not."""
    offers: list[dict[str, Any]] = []
    pairs: list[tuple[str, str, bool]] = []
    names = list(NICHES)
    for n, (name, niche) in enumerate(NICHES.items()):
        lab, other_lab = LABS[n % 4], LABS[(n + 1) % 4]
        patent = f"EP{3_100_000 + n * 7919}B1"
        title, summary = niche["en"][0], niche["en"][1]
        original = {
            "id": f"dup-{name}-original",
            "title": title,
            "summary": summary,
            "description": f"Developed by {lab}; {summary.lower()}.",
            "patents": [patent],
        }
        copy = {
            "id": f"dup-{name}-copy",
            "title": f"{title.upper()} (European subsidiary)",
            "summary": summary + ".",
            "description": f"Developed by {lab}: {summary.lower()}",
        }
        patented = {
            "id": f"dup-{name}-patent",
            "title": niche["zh"][0],
            "summary": niche["zh"][1],
            "patents": [patent.replace("EP", "EP ").replace("B1", " B1")],
        }
        translated = {
            "id": f"dup-{name}-translation",
            "title": niche["es"][0],
            "summary": niche["es"][1],
            "translations": [["en", title, summary, f"Developed by {lab}; {summary.lower()}."]],
        }
        sibling = NICHES[names[n ^ 1]]
        negative = {
            "id": f"dup-{name}-sibling",
            "title": f"{sibling['en'][1]}, field version",
            "summary": f"Field-tested by {other_lab} with three customers",
        }
        neighbour = {
            "id": f"dup-{name}-neighbour",
            "title": niche["en"][1],
            "summary": f"A different design from {other_lab}, at an earlier stage",
            "description": f"Prototype by {other_lab}, not yet tested in the field.",
        }
        for o in (original, copy, patented, translated, negative, neighbour):
            offers.append({**o, "niche": name, "keywords": niche["kw"] if o is not negative else sibling["kw"]})
        pairs += [
            (original["id"], copy["id"], True),
            (original["id"], patented["id"], True),
            (original["id"], translated["id"], True),
            (original["id"], negative["id"], False),
            (original["id"], neighbour["id"], False),
        ]
    return {"offers": offers, "pairs": [list(p) for p in pairs]}


def signed_create(site: Site, kind: Kind, values: dict[str, Any], at: int) -> Version:
    """A create of `kind` with `values` (lists as tuples), by `site`, stamped `at`."""
    fields = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in values.items()
    }
    change = create_change(make_content(kind, {**kind.defaults, "taxonomy": T, **fields}, "submitted"))
    rid, nonce = new_record_id(site.site_id, at, pins_of(kind, change))
    return make_version(
        site.key, site=site.site_id, record_id=rid, hlc=Stamp(at, 0), change=change, record_nonce=nonce, kind=kind
    )


def load(site: Site, data: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Write the set's offers and requests into a hub's store as its own signed records."""
    base = 1_760_000_000_000
    versions, offer_ids, request_ids = [], {}, {}
    for i, o in enumerate(data["offers"]):
        v = signed_create(site, LISTING, {k: x for k, x in o.items() if k not in ("id", "niche", "language")}, base + i)
        offer_ids[v.record_id] = o["id"]
        versions.append(v)
    request_fields = ("title", "sought", "request_type", "keywords", "sectors")
    for i, r in enumerate(data["requests"]):
        values = {"via": site.site_id, "confidentiality": "public", **{k: r[k] for k in request_fields if k in r}}
        v = signed_create(site, REQUEST, values, base + len(data["offers"]) + i)
        request_ids[v.record_id] = r["id"]
        versions.append(v)
    benchlib.write_versions(site.store, versions, local=True)
    return offer_ids, request_ids


def evaluate(
    site: Site, data: dict[str, Any], offer_ids: dict[str, str], request_ids: dict[str, str]
) -> dict[str, float]:
    niche_of = {o["id"]: o["niche"] for o in data["offers"]}
    relevant_count = {n: sum(1 for o in data["offers"] if o["niche"] == n) for n in NICHES}
    by_label = {r["id"]: r for r in data["requests"]}
    hits5, precision5, recall10, negatives5 = [], [], [], []
    for rid, label in request_ids.items():
        want = by_label[label]["relevant_niche"]
        got = [niche_of.get(offer_ids.get(s.record.record_id, ""), "") for s in suggestions(site, rid, limit=10)]
        top5 = got[:5]
        hits5.append(1.0 if want in top5 else 0.0)
        precision5.append(sum(1 for n in top5 if n == want) / 5)
        recall10.append(sum(1 for n in got[:10] if n == want) / min(10, relevant_count[want]))
        negatives5.append(sum(1 for n in top5 if n == by_label[label]["hard_negative_niche"]) / 5)
    return {
        "matching_success_at_5": statistics.mean(hits5),
        "matching_precision_at_5": statistics.mean(precision5),
        "matching_recall_at_10": statistics.mean(recall10),
        "matching_hard_negatives_in_top_5": statistics.mean(negatives5),
        "matching_requests": len(request_ids),
        "matching_offers": len(offer_ids),
    }


def evaluate_duplicates(folder: Path, dup: dict[str, Any]) -> dict[str, float]:
    """Precision and recall of `transfer.duplicates.candidates` for each labelled original,
    on a hub holding the duplicates set: a pair found that is not labelled a duplicate
    counts against precision."""
    init_hub(folder, listen="127.0.0.1:0")
    site = Site.open(DataDir(folder), KINDS)
    base = 1_770_000_000_000
    versions, ids = [], {}
    for i, o in enumerate(dup["offers"]):
        v = signed_create(site, LISTING, {k: x for k, x in o.items() if k not in ("id", "niche")}, base + i)
        ids[o["id"]] = v.record_id
        versions.append(v)
    benchlib.write_versions(site.store, versions, local=True)
    label = {v: k for k, v in ids.items()}
    truth = {(a, b) for a, b, same in dup["pairs"] if same}
    originals = sorted({a for a, _, _ in dup["pairs"]})
    found: set[tuple[str, str]] = set()
    took = []
    for o in originals:
        t = time.perf_counter()
        pairs = candidates(site, ids[o])
        took.append((time.perf_counter() - t) * 1000)
        found.update((o, label.get(p.other.record_id, p.other.record_id)) for p in pairs)
    right = len(found & truth)
    site.close()
    return {
        "duplicates_precision": right / len(found) if found else 0.0,
        "duplicates_recall": right / len(truth),
        "duplicates_pairs_labelled": len(dup["pairs"]),
        "duplicates_check_one_ms_p50": percentile(took, 0.5),
    }


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offers-at", type=int, default=100_000, help="offers added for the timing (benchlib's)")
    ap.add_argument("--write-set", action="store_true", help="write bench/data/matching-eval.json from the niches")
    a = ap.parse_args()
    if a.write_set:
        SET.write_text(
            json.dumps({**build_set(), "duplicates": build_duplicates()}, ensure_ascii=False, indent=1) + "\n"
        )
        print(f"written {SET}")
    data = json.loads(SET.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        init_hub(Path(tmp) / "hq", listen="127.0.0.1:0")
        site = Site.open(DataDir(Path(tmp) / "hq"), KINDS)
        offer_ids, request_ids = load(site, data)
        figures: dict[str, float] = evaluate(site, data, offer_ids, request_ids)
        figures.update(evaluate_duplicates(Path(tmp) / "dup", data["duplicates"]))
        for start in range(0, a.offers_at, 5000):
            chunk = benchlib.signed_offers(site.key, site.site_id, min(5000, a.offers_at - start), start=start)
            benchlib.write_versions(site.store, chunk, local=True)
        crowded = evaluate(site, data, offer_ids, request_ids)
        figures.update(
            {f"{k}_among_{a.offers_at}": v for k, v in crowded.items() if not k.endswith(("requests", "offers"))}
        )
        took = []
        for rid in list(request_ids)[:50]:
            t = time.perf_counter()
            suggestions(site, rid, limit=10)
            took.append((time.perf_counter() - t) * 1000)
        figures[f"match_one_at_{a.offers_at}_ms_p50"] = percentile(took, 0.5)
        figures[f"match_one_at_{a.offers_at}_ms_p95"] = percentile(took, 0.95)
        figures["offers_at"] = a.offers_at
        site.close()
    for k, v in figures.items():
        print(f"  {k:40} {v:10.3f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "matching.json").write_text(
        json.dumps({"machine": benchlib.machine("sqlite"), "figures": figures}, indent=2) + "\n"
    )
    print(f"written {out / 'matching.json'}")


if __name__ == "__main__":
    main()
