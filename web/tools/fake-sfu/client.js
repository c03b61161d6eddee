// The real call view (callview.js, as a guest would mount it) with its socket
// replaced by a BroadcastChannel to hub.js: the SFU view without a server.
// client.html?id=<contactId>&n=<people in the call>
import { mountCall } from '/public/assets/callview.js';

const params = new URLSearchParams(location.search);
const me = Number(params.get('id'));
const n = Number(params.get('n') || 3);
const NAMES = ['Alice Martin', 'Bob Keller', 'Carol Nguyen', 'Dave Okafor', 'Erin Schulz', 'Farid Haddad'];
const contact = (id) => ({ id, displayName: NAMES[id - 1], userId: `u${id}`, userDbId: 100 + id, domain: 'ubimax' });
const ids = Array.from({ length: n }, (_, i) => i + 1);
const callLog = {
  callId: 'fake', callTitle: 'Line 3 stand-up', callType: 'SFU', callStatus: 'Started',
  creatorContact: contact(1), invitedContacts: ids.slice(1).map(contact),
  callEvents: ids.map((id, i) => ({ id: i + 1, type: 'Join', contact: contact(id), timestamp: new Date().toISOString() })),
};

class FakeSocket extends EventTarget {
  constructor() {
    super();
    this.state = 'open';
    this.bc = new BroadcastChannel('fake-sfu');
    this.bc.onmessage = ({ data }) => {
      if (data.to !== me) return;
      this.dispatchEvent(new CustomEvent(data.frame.type, { detail: data.frame }));
    };
  }

  send(frame) {
    this.bc.postMessage({ from: me, to: 'hub', frame });
    return true;
  }
}

localStorage.setItem('callhub.simulcast', '0'); // a browser as the SFU does not take simulcast
window.view = await mountCall(document.getElementById('app'), {
  callId: 'fake', socket: new FakeSocket(), user: null,
  guest: { contactId: me, name: NAMES[me - 1], callLog, media: { callType: 'SFU', iceServers: [], contactId: me } },
  video: true, onLeave: () => {},
});
