// TinyStudio's entry for Netron inside a Streamlit component frame; it replaces Netron's index.js.
//
// Netron's browser host (browser.js) is reused for everything it draws; this subclass changes only what an
// embedded, offline viewer must not do: nag to update when the build is older than 180 days, ask for cookie
// consent (after a lookup on another host), send Google Analytics events, or navigate the frame away. The model
// arrives from Python through Streamlit's component protocol (postMessage): we announce "componentReady", receive
// "render" messages whose args hold the model bytes, and set the frame height.

// browser.js and view.js publish their internals (BrowserFileContext among them) on window.exports when it exists.
window.exports = window.exports || {};
await import('./browser.js');
await import('./view.js');
const { browser, view } = window.exports;

const post = (type, fields) => {
    window.parent.postMessage({ isStreamlitMessage: true, type, ...fields }, '*');
};

// A second fence behind the page's Content-Security-Policy: requests to another origin fail here, in plain words.
const local = (url) => {
    try {
        const target = new URL(url, window.location.href);
        return target.protocol === 'data:' || target.protocol === 'blob:' || target.origin === window.location.origin;
    } catch {
        return false;
    }
};
const open = window.XMLHttpRequest.prototype.open;
window.XMLHttpRequest.prototype.open = function(method, url, ...rest) {
    if (!local(url)) {
        throw new Error(`Request to another host refused: ${url}`);
    }
    return open.call(this, method, url, ...rest);
};
const fetch = window.fetch.bind(window);
window.fetch = (input, init) => {
    const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
    return local(url) ? fetch(input, init) : Promise.reject(new Error(`Request to another host refused: ${url}`));
};
Object.defineProperty(window.navigator, 'sendBeacon', { value: () => false });

const same = (a, b) => {
    if (!a || !b || a.length !== b.length) {
        return false;
    }
    for (let i = 0; i < a.length; i++) {
        if (a[i] !== b[i]) {
            return false;
        }
    }
    return true;
};

class StreamlitHost extends browser.Host {

    constructor() {
        super();
        // Not "packaged": Netron's error box then says "OK" instead of offering to open a GitHub issue.
        this._environment.packaged = false;
        this._environment.repository = null;
        this._shown = null;   // { bytes, filename } on screen
        this._pending = null; // latest render args not handled yet
        this._busy = false;
        this._error = null;   // last value sent to Python
        this._opens = 0;      // counted on <body> (data-opens) so browser tests can see a new model replace the old
    }

    async view(view) {
        // Netron's browser host runs its update nag, consent dialog and telemetry here; an embedded viewer runs none.
        this._view = view;
    }

    async start() {
        const document = this.document;
        // A file dropped on the frame would otherwise replace the studio page inside it.
        document.addEventListener('dragover', (e) => e.preventDefault());
        document.addEventListener('drop', (e) => e.preventDefault());
        this.window.addEventListener('message', (e) => this._message(e));
        this._view.show('welcome spinner');
        post('streamlit:componentReady', { apiVersion: 1 });
    }

    _message(event) {
        if (event.source !== this.window.parent || !event.data || event.data.type !== 'streamlit:render') {
            return;
        }
        const args = event.data.args || {};
        post('streamlit:setFrameHeight', { height: args.height });
        this._pending = args;
        this._drain();
    }

    async _drain() {
        if (this._busy) {
            return;
        }
        this._busy = true;
        try {
            while (this._pending) {
                const args = this._pending;
                this._pending = null;
                const bytes = args.model instanceof Uint8Array ? args.model : new Uint8Array(args.model || []);
                const filename = String(args.filename || 'model');
                // Streamlit sends the args again on every rerun; redrawing the same model would reset zoom and selection.
                if (!this._shown || this._shown.filename !== filename || !same(this._shown.bytes, bytes)) {
                    this._shown = { bytes, filename };
                    // eslint-disable-next-line no-await-in-loop
                    await this._openBytes(bytes, filename);
                }
            }
        } finally {
            this._busy = false;
        }
    }

    async _openBytes(bytes, filename) {
        const document = this.document;
        this._view.show('welcome spinner');
        document.body.setAttribute('data-tinystudio', 'loading');
        let error = null;
        try {
            const file = new this.window.File([bytes], filename);
            const context = new browser.BrowserFileContext(this, file, [file]);
            await context.open();
            const model = await this._view.open(context);
            if (!model) {
                throw new Error(`Netron found no graph in '${filename}'.`);
            }
            document.title = filename;
            this._view.show(null);
        } catch (e) {
            error = e && e.message ? e.message : String(e);
            // Shown inside the frame without a button to press: the page stays usable and the next model replaces it.
            this._element('message-text').innerText = error;
            this._element('message-button').style.display = 'none';
            document.body.setAttribute('class', 'alert');
        }
        document.body.setAttribute('data-opens', String(++this._opens));
        document.body.setAttribute('data-tinystudio', error ? 'error' : 'ready');
        if (error !== this._error) {
            this._error = error;
            post('streamlit:setComponentValue', { value: error, dataType: 'json' });
        }
    }

    async execute(name) {
        // The menu's "Open..." and "Report Issue" have no place in the studio: the model comes from the session.
        if (name === 'about') {
            this._view.about();
        }
    }

    openURL(url) {
        // Only a user's click on a link in Netron's documentation sidebar gets here; keep the studio in its frame.
        this.window.open(url, '_blank', 'noopener,noreferrer');
    }

    exception(/* error, fatal */) {
        // Netron reports errors to Google Analytics here.
    }

    event(/* name, params */) {
        // Netron reports usage to Google Analytics here.
    }
}

const fail = (message) => {
    const document = window.document;
    document.getElementById('message-text').innerText = message;
    document.getElementById('message-button').style.display = 'none';
    document.body.setAttribute('class', 'alert');
    document.body.setAttribute('data-tinystudio', 'error');
};

window.addEventListener('error', (event) => fail(event && event.message ? event.message : 'Netron failed to start.'));

const main = () => {
    const host = new StreamlitHost();
    window.__view__ = new view.View(host);
    window.__view__.start();
};

if (document.readyState === 'complete') {
    main();
} else {
    window.addEventListener('load', main);
}
