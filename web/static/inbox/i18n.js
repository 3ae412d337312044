// Russian and English strings. The language comes from localStorage, else from
// navigator.language; switching re-renders the app through onLangChange.
const STRINGS = {
  en: {
    "app.title": "omnihub inbox",
    "login.title": "Sign in to omnihub",
    "login.email": "E-mail",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.failed": "Sign-in failed",
    "header.logout": "Sign out",
    "header.lang": "Language",
    "banner.offline": "Offline — reconnecting…",
    "banner.offline_in": "Offline — reconnecting in {s} s…",
    "filter.mine": "Mine",
    "filter.unassigned": "Unassigned",
    "filter.all": "All",
    "filter.channel": "Channel",
    "filter.any_channel": "All channels",
    "filter.status": "Status",
    "filter.any_status": "Any status",
    "filter.search": "Search messages and clients",
    "list.empty": "No conversations here",
    "list.more": "Load more",
    "list.loading": "Loading…",
    "status.open": "Open",
    "status.pending": "Pending",
    "status.resolved": "Resolved",
    "status.snoozed": "Snoozed",
    "msg.received": "received",
    "msg.queued": "queued",
    "msg.sent": "sent",
    "msg.delivered": "delivered",
    "msg.failed": "failed",
    "msg.retry": "Retry",
    "msg.show_html": "Show formatted",
    "msg.hide_html": "Hide formatted",
    "msg.note": "Private note",
    "msg.you": "You",
    "thread.none": "Select a conversation",
    "thread.none_hint": "Pick one on the left, or press j / k.",
    "thread.assign_me": "Assign to me",
    "thread.unassign": "Unassign",
    "thread.assigned_to": "Assigned to {name}",
    "thread.unassigned": "Unassigned",
    "thread.resolve": "Resolve",
    "thread.reopen": "Reopen",
    "thread.pending": "Pending",
    "thread.snooze": "Snooze",
    "thread.snooze_1h": "1 hour",
    "thread.snooze_4h": "4 hours",
    "thread.snooze_tomorrow": "Until tomorrow 9:00",
    "thread.snooze_week": "1 week",
    "thread.typing": "{name} is typing…",
    "thread.visitor": "The client",
    "thread.back": "Back",
    "thread.card": "Client card",
    "thread.empty": "No messages yet",
    "reply.placeholder": "Reply… (Enter sends, Shift+Enter for a new line)",
    "reply.note_placeholder": "Private note — only agents see it",
    "reply.note": "Note",
    "reply.send": "Send",
    "reply.add_note": "Add note",
    "reply.via": "Replying via {channel}",
    "card.title": "Client",
    "card.identities": "Channels",
    "card.conversations": "Conversations",
    "card.timeline": "Timeline",
    "card.none": "Nothing yet",
    "card.email": "E-mail",
    "card.phone": "Phone",
    "card.since": "Client since {date}",
    "ev.message_in": "{name} wrote",
    "ev.message_out": "{name} replied",
    "ev.note": "{name} added a note",
    "ev.assigned": "{name} assigned the conversation",
    "ev.status": "Status: {status}",
    "ev.conversation": "Conversation started",
    "ev.client": "Client updated",
    "ev.other": "{type}",
    "help.title": "Keyboard shortcuts",
    "help.j": "Next conversation",
    "help.k": "Previous conversation",
    "help.r": "Focus the reply box",
    "help.e": "Resolve the conversation",
    "help.n": "Toggle private note",
    "help.slash": "Search",
    "help.help": "Show this help",
    "help.esc": "Close / leave the field",
    "help.enter": "Send (in the reply box)",
    "help.shift_enter": "New line (in the reply box)",
    "help.close": "Close",
    "error.generic": "Something went wrong: {error}",
    "time.yesterday": "Yesterday",
    "sla.title": "SLA",
    "sla.due_in": "due in {t}",
    "sla.overdue": "overdue {t}",
    "sla.min": "{n} min",
    "sla.h": "{n} h",
    "sla.h_min": "{h} h {m} min",
    "sla.d": "{n} d",
    "sla.first_response": "First response",
    "sla.next_response": "Next response",
    "sla.resolution": "Resolution",
    "sla.breached": "SLA breached ({metric}): {name}",
    "sla.open": "Open",
    "prio.urgent": "Urgent",
    "prio.urgent_title": "An SLA was breached",
    "prio.vip": "VIP",
    "prio.vip_title": "VIP client",
    "presence.online": "Online",
    "presence.away": "Away",
    "presence.offline": "offline",
    "presence.toggle_title": "Your status: away agents get no new conversations",
    "thread.assign_to": "Assign to…",
    "filter.queue": "Queue",
    "queue.waiting": "waiting {t}",
  },
  ru: {
    "app.title": "omnihub — входящие",
    "login.title": "Вход в omnihub",
    "login.email": "E-mail",
    "login.password": "Пароль",
    "login.submit": "Войти",
    "login.failed": "Не удалось войти",
    "header.logout": "Выйти",
    "header.lang": "Язык",
    "banner.offline": "Нет связи — переподключаемся…",
    "banner.offline_in": "Нет связи — переподключение через {s} с…",
    "filter.mine": "Мои",
    "filter.unassigned": "Свободные",
    "filter.all": "Все",
    "filter.channel": "Канал",
    "filter.any_channel": "Все каналы",
    "filter.status": "Статус",
    "filter.any_status": "Любой статус",
    "filter.search": "Поиск по сообщениям и клиентам",
    "list.empty": "Здесь нет диалогов",
    "list.more": "Показать ещё",
    "list.loading": "Загрузка…",
    "status.open": "Открыт",
    "status.pending": "Ожидает",
    "status.resolved": "Решён",
    "status.snoozed": "Отложен",
    "msg.received": "получено",
    "msg.queued": "в очереди",
    "msg.sent": "отправлено",
    "msg.delivered": "доставлено",
    "msg.failed": "ошибка",
    "msg.retry": "Повторить",
    "msg.show_html": "Показать оформление",
    "msg.hide_html": "Скрыть оформление",
    "msg.note": "Заметка",
    "msg.you": "Вы",
    "thread.none": "Выберите диалог",
    "thread.none_hint": "Слева, или клавишами j / k.",
    "thread.assign_me": "Взять себе",
    "thread.unassign": "Снять",
    "thread.assigned_to": "Ответственный: {name}",
    "thread.unassigned": "Без ответственного",
    "thread.resolve": "Решить",
    "thread.reopen": "Открыть снова",
    "thread.pending": "Ожидает",
    "thread.snooze": "Отложить",
    "thread.snooze_1h": "На час",
    "thread.snooze_4h": "На 4 часа",
    "thread.snooze_tomorrow": "До завтра, 9:00",
    "thread.snooze_week": "На неделю",
    "thread.typing": "{name} печатает…",
    "thread.visitor": "Клиент",
    "thread.back": "Назад",
    "thread.card": "Карточка клиента",
    "thread.empty": "Сообщений пока нет",
    "reply.placeholder": "Ответ… (Enter — отправить, Shift+Enter — новая строка)",
    "reply.note_placeholder": "Заметка — видна только сотрудникам",
    "reply.note": "Заметка",
    "reply.send": "Отправить",
    "reply.add_note": "Добавить заметку",
    "reply.via": "Ответ уйдёт через {channel}",
    "card.title": "Клиент",
    "card.identities": "Каналы",
    "card.conversations": "Диалоги",
    "card.timeline": "История",
    "card.none": "Пока пусто",
    "card.email": "E-mail",
    "card.phone": "Телефон",
    "card.since": "Клиент с {date}",
    "ev.message_in": "{name} написал(а)",
    "ev.message_out": "{name} ответил(а)",
    "ev.note": "{name} оставил(а) заметку",
    "ev.assigned": "{name} назначил(а) диалог",
    "ev.status": "Статус: {status}",
    "ev.conversation": "Начат диалог",
    "ev.client": "Карточка изменена",
    "ev.other": "{type}",
    "help.title": "Горячие клавиши",
    "help.j": "Следующий диалог",
    "help.k": "Предыдущий диалог",
    "help.r": "Перейти к ответу",
    "help.e": "Отметить решённым",
    "help.n": "Переключить заметку",
    "help.slash": "Поиск",
    "help.help": "Эта справка",
    "help.esc": "Закрыть / выйти из поля",
    "help.enter": "Отправить (в поле ответа)",
    "help.shift_enter": "Новая строка (в поле ответа)",
    "help.close": "Закрыть",
    "error.generic": "Ошибка: {error}",
    "time.yesterday": "Вчера",
    "sla.title": "SLA",
    "sla.due_in": "через {t}",
    "sla.overdue": "просрочено на {t}",
    "sla.min": "{n} мин",
    "sla.h": "{n} ч",
    "sla.h_min": "{h} ч {m} мин",
    "sla.d": "{n} дн",
    "sla.first_response": "Первый ответ",
    "sla.next_response": "Следующий ответ",
    "sla.resolution": "Решение",
    "sla.breached": "Нарушен SLA ({metric}): {name}",
    "sla.open": "Открыть",
    "prio.urgent": "Срочно",
    "prio.urgent_title": "Нарушен SLA",
    "prio.vip": "VIP",
    "prio.vip_title": "VIP-клиент",
    "presence.online": "На месте",
    "presence.away": "Отошёл",
    "presence.offline": "не в сети",
    "presence.toggle_title": "Ваш статус: отошедшим новые диалоги не назначаются",
    "thread.assign_to": "Назначить…",
    "filter.queue": "Очередь",
    "queue.waiting": "ждёт {t}",
  },
};

const STORAGE_KEY = "omnihub.lang";
const listeners = new Set();

function initialLang() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && STRINGS[stored]) return stored;
  return (navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
}

let lang = initialLang();

export function getLang() {
  return lang;
}

export const LANGS = Object.keys(STRINGS);

export function setLang(next) {
  if (!STRINGS[next] || next === lang) return;
  lang = next;
  localStorage.setItem(STORAGE_KEY, next);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// Static markup marks translatable text with data-i18n (textContent) and
// data-i18n-placeholder / data-i18n-title (attributes).
export function applyStatic(root = document) {
  document.documentElement.lang = lang;
  document.title = t("app.title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
  }
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return t("time.yesterday");
  const opts = { day: "numeric", month: "short" };
  if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
  return d.toLocaleDateString(lang, opts);
}

export function formatClock(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
}

export function formatDateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
}
