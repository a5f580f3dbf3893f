//! Conversation history (spec §8). Owned by the dashboard/history issue.
