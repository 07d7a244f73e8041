// Shows what GET /v1 reports. The workbench pages grow here as their APIs land.
const info = document.getElementById('server-info');

async function showServerInfo() {
  const key = sessionStorage.getItem('augserve-key');
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  try {
    const response = await fetch('/v1', { headers });
    const body = await response.json();
    if (!response.ok) {
      info.textContent = `The server answered ${response.status}: ${body.error.message}`;
      return;
    }
    const features = body.features.length ? body.features.join(', ') : 'none yet';
    info.textContent = `augserve ${body.version}; features: ${features}.`;
  } catch (err) {
    info.textContent = `The server could not be reached: ${err.message}`;
  }
}

showServerInfo();
