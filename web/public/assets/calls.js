// The call API's requests, and (re-exported from calllog.js) the reading of call logs.

import { api } from './api.js';

export * from './calllog.js';

export const listCalls = (size = 100) => api('GET', '/rtc/getCallLogs', { query: { page: 0, size } });
export const getCall = (callId) => api('GET', '/rtc/getCallLogById', { query: { callId } });
export const joinCall = (callId) => api('POST', '/rtc/joinCall', { query: { callId } });
export const declineCall = (callId) => api('POST', '/rtc/declineCall', { query: { callId } });
export const leaveCall = (callId) => api('POST', '/rtc/leaveCall', { query: { callId } });
export const endCall = (callId) => api('POST', '/rtc/endCall', { query: { callId } });
export const createCall = (req) => api('POST', '/rtc/createCall', { body: req });
export const inviteContacts = (callId, body) => api('POST', '/rtc/inviteContacts', { query: { callId }, body });
export const iceServers = () => api('GET', '/rtc/iceServers');

