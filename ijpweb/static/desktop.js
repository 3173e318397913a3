// The viewer of an interactive job's desktop (templates/jobs/desktop.jinja2): noVNC's RFB
// (static/novnc, vendored from @novnc/novnc 1.7.0) on the portal's websocket proxy. The
// proxy authenticates to the VNC server itself: no password is asked for or known here, and
// the websocket's token travels in an HttpOnly cookie, out of this script's reach.
import RFB from './novnc/core/rfb.js';

const screen = document.getElementById('desktop-screen');
const status = document.getElementById('desktop-status');
const again = document.getElementById('desktop-reconnect');
let rfb = null;

function wsUrl() {
  // the proxy: the page's own origin (behind Apache), or the page's host with the port the
  // portal names (ijp.desktop.public_port); ws: or wss: as the page is http: or https:
  const origin = screen.dataset.wsOrigin;
  if (origin) return origin + screen.dataset.wsPath;
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return scheme + '//' + window.location.host + screen.dataset.wsPath;
}

function say(text) {
  status.textContent = text;
}

function connect() {
  again.hidden = true;
  say('Connecting…');
  try {
    rfb = new RFB(screen, wsUrl(), { shared: true });
  } catch (e) {
    say('Disconnected: ' + e.message);
    again.hidden = false;
    return;
  }
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.focusOnClick = true;
  rfb.addEventListener('connect', () => {
    say('Connected');
    rfb.focus();
  });
  rfb.addEventListener('desktopname', (e) => {
    document.title = e.detail.name + ' · ' + document.title.split(' · ').slice(-1)[0];
  });
  rfb.addEventListener('securityfailure', (e) => {
    say('Disconnected: the desktop refused the connection' + (e.detail.reason ? ' (' + e.detail.reason + ')' : ''));
  });
  rfb.addEventListener('credentialsrequired', () => {
    // the proxy answers for the browser; a server asking here is not the portal's proxy
    say('Disconnected: the desktop asked for a password the portal should have given');
    rfb.disconnect();
  });
  rfb.addEventListener('disconnect', (e) => {
    say(e.detail.clean
      ? 'Disconnected: the session has ended or the connection was closed'
      : 'Disconnected: the connection to the desktop was lost (or refused: reload the page to open it again)');
    again.hidden = false;
    rfb = null;
  });
}

again.addEventListener('click', () => {
  // a fresh page load mints a fresh token (the one in the cookie may have gone with the login)
  window.location.reload();
});

connect();
