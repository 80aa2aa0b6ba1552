// Labels in Chinese (the default) and English; the choice is kept in localStorage.
const LABELS = {
  zh: {
    title: "校园物联运维", nav_city: "城市总览", nav_alerts: "告警",
    lang_switch: "EN", live_stream: "实时推送", live_poll: "轮询 {s} 秒", updated: "更新于 {t}",
    city: "城市", district: "区县", school: "学校", schools: "学校",
    online: "在线", degraded: "部分故障", offline: "离线", unknown: "未知",
    level_I: "红", level_II: "橙", level_III: "黄", level_IV: "蓝",
    level_I_long: "红色（I 级）", level_II_long: "橙色（II 级）", level_III_long: "黄色（III 级）", level_IV_long: "蓝色（IV 级）",
    active_alerts: "当前告警", no_alerts: "没有当前告警", devices: "设备", devices_online: "在线设备",
    gateway: "网关", last_seen: "最近心跳", never: "从未", rooms: "教室与场所", room_none: "未指定场所",
    device: "设备", profile: "型号", status: "状态", values: "最新值", last_ok: "最近正常读数",
    last_error: "最近错误", level: "级别", point: "测点", value: "值", threshold: "阈值",
    message: "说明", standard: "依据标准", opened: "发生时间",
    ack: "确认", resolve: "解除",
    kpis: "考核指标", kpi_target: "2025 目标", history: "历史曲线", range: "时间范围",
    range_1h: "1 小时", range_6h: "6 小时", range_24h: "24 小时", range_7d: "7 天",
    no_data: "暂无数据", school_not_found: "找不到该学校", problems_first: "有问题的学校排在前面",
    load_failed: "无法连接 hub：{e}", login_required: "需要登录（401）：请先在 API 中登录",
    forbidden: "当前角色无权执行此操作", schools_summary: "{n} 所学校", alert_count: "{n} 条告警",
    kpi_name: "指标", kpi_value: "当前值", kpi_verdict: "是否达标", kpi_met: "达标", kpi_missed: "未达标",
    kpi_no_target: "规划未定数值目标", kpi_schools: "（{n} 所学校）",
    kpi_campus_iot_coverage: "校园物联网覆盖率", kpi_smart_lighting_coverage: "智能灯光教室覆盖率",
    kpi_recording_classroom_coverage: "录播教室覆盖率", kpi_classroom_lighting_compliance: "教室照明达标率（GB 7793-2010）",
    kpi_recording_room_usage: "录播教室使用时长（三个课堂）", kpi_energy_per_school: "校均日用电量",
    role_city_admin: "市级管理员", role_district_operator: "区县运维", role_school_technician: "学校技术员",
    role_viewer: "只读用户", sign_out: "退出", read_only: "只读",
    state: "处理", state_open: "未确认", state_acknowledged: "已确认", state_resolved: "已解除",
    cleared_at: "{t} 起已恢复正常", occurrences: "共发生 {n} 次", escalated_to: "已升级至{tier}",
    tier_school: "学校", tier_district: "区县", tier_city: "市级",
    ack_title: "确认告警 #{id}", resolve_title: "解除告警 #{id}", comment: "备注（可选）", cancel: "取消",
    changed_meanwhile: "该告警已被他人处理：{e}",
    range_30d: "30 天", range_custom: "自定义", from: "从", to: "到", range_invalid: "开始时间须早于结束时间",
    history_failed: "无法读取历史：{e}", history_empty: "该时间范围内没有数据",
    history_buckets: "服务器降采样为 {n} 段（每段 {s} 秒）：线为均值，阴影为最小至最大",
    mean: "均值", min: "最小", max: "最大", completeness: "24 小时完整率",
    approval_pending: "待审核备案", approval_rejected: "已拒绝", profile_unknown: "本 hub 不认识该型号",
    room_classroom: "教室", room_lab: "实验室", room_canteen: "食堂", room_kitchen: "厨房",
    room_recording: "录播教室", room_office: "办公室", room_panel: "配电间",
    tier_central: "市级中心 hub · {n} 所学校，由 {hubs} 个区县 hub 上报", tier_regional: "区县 hub · {n} 所学校",
    tier_hubs_offline: "{n} 个区县 hub 离线",
  },
  en: {
    title: "Campus IoT operations", nav_city: "City", nav_alerts: "Alerts",
    lang_switch: "中文", live_stream: "live", live_poll: "polling every {s} s", updated: "updated {t}",
    city: "City", district: "District", school: "School", schools: "Schools",
    online: "online", degraded: "degraded", offline: "offline", unknown: "unknown",
    level_I: "Red", level_II: "Orange", level_III: "Yellow", level_IV: "Blue",
    level_I_long: "Red (level I)", level_II_long: "Orange (level II)", level_III_long: "Yellow (level III)", level_IV_long: "Blue (level IV)",
    active_alerts: "Active alerts", no_alerts: "No active alerts", devices: "Devices", devices_online: "devices online",
    gateway: "Gateway", last_seen: "Last heartbeat", never: "never", rooms: "Rooms", room_none: "No room",
    device: "Device", profile: "Profile", status: "Status", values: "Latest values", last_ok: "Last good reading",
    last_error: "Last error", level: "Level", point: "Point", value: "Value", threshold: "Threshold",
    message: "Message", standard: "Standard", opened: "Opened",
    ack: "Acknowledge", resolve: "Resolve",
    kpis: "KPIs", kpi_target: "2025 target", history: "History", range: "Range",
    range_1h: "1 hour", range_6h: "6 hours", range_24h: "24 hours", range_7d: "7 days",
    no_data: "no data yet", school_not_found: "school not found", problems_first: "schools with problems first",
    load_failed: "cannot reach the hub: {e}", login_required: "sign-in required (401): log in to the API first",
    forbidden: "your role may not do this", schools_summary: "{n} schools", alert_count: "{n} alerts",
    kpi_name: "KPI", kpi_value: "Now", kpi_verdict: "Meets target", kpi_met: "met", kpi_missed: "not met",
    kpi_no_target: "no number in the plans", kpi_schools: "({n} schools)",
    kpi_campus_iot_coverage: "Campus IoT coverage", kpi_smart_lighting_coverage: "Smart lighting coverage",
    kpi_recording_classroom_coverage: "Recording classroom coverage", kpi_classroom_lighting_compliance: "Classroom lighting compliance (GB 7793-2010)",
    kpi_recording_room_usage: "Recording room usage", kpi_energy_per_school: "Energy per school",
    role_city_admin: "city administrator", role_district_operator: "district operator", role_school_technician: "school technician",
    role_viewer: "viewer", sign_out: "Sign out", read_only: "read-only",
    state: "Handling", state_open: "open", state_acknowledged: "acknowledged", state_resolved: "resolved",
    cleared_at: "back to normal since {t}", occurrences: "{n} occurrences", escalated_to: "escalated to the {tier}",
    tier_school: "school", tier_district: "district", tier_city: "city",
    ack_title: "Acknowledge alert #{id}", resolve_title: "Resolve alert #{id}", comment: "Comment (optional)", cancel: "Cancel",
    changed_meanwhile: "someone changed this alert meanwhile: {e}",
    range_30d: "30 days", range_custom: "custom", from: "from", to: "to", range_invalid: "the start must be before the end",
    history_failed: "cannot read the history: {e}", history_empty: "no data in this range",
    history_buckets: "downsampled by the hub into {n} buckets of {s} s: the line is the mean, the band min to max",
    mean: "mean", min: "min", max: "max", completeness: "Complete (24 h)",
    approval_pending: "pending approval", approval_rejected: "rejected", profile_unknown: "profile unknown to this hub",
    room_classroom: "classroom", room_lab: "lab", room_canteen: "canteen", room_kitchen: "kitchen",
    room_recording: "recording classroom", room_office: "office", room_panel: "electrical room",
    tier_central: "central hub · {n} schools reported by {hubs} regional hub(s)", tier_regional: "regional hub · {n} schools",
    tier_hubs_offline: "{n} regional hub(s) offline",
  },
};

let lang = localStorage.getItem("campus.lang") === "en" ? "en" : "zh";

export function language() { return lang; }

export function setLanguage(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("campus.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

/** The label for ``key`` with ``{name}`` placeholders filled from ``vars`` (``fallback`` when
 * neither language has it, e.g. a name the hub sent that the dashboard does not know yet). */
export function t(key, vars = {}, fallback = key) {
  const text = LABELS[lang][key] ?? LABELS.en[key] ?? fallback;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

/** Fill every ``[data-i18n]`` element under ``root`` with its label. */
export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
