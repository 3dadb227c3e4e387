package discovery

import (
	"fmt"
	"unicode/utf8"
)

// Limits on what a node may announce. They keep announcements small and
// bound what a malformed or hostile entry can make a decoder allocate.
const (
	MaxIDLen          = 256
	MaxAddressLen     = 1024
	MaxServices       = 256
	MaxServiceNameLen = 256
	MaxMetadata       = 64
	MaxMetadataKeyLen = 256
	MaxMetadataValLen = 4096
)

// ValidateNode checks n against the rules Register applies: a non-empty id,
// non-empty service names, semantic versions, and the size limits above. The
// error wraps ErrInvalidNode or ErrInvalidVersion.
func ValidateNode(n NodeInfo) error {
	if n.ID == "" {
		return fmt.Errorf("%w: empty id", ErrInvalidNode)
	}
	if !validString(n.ID, MaxIDLen) {
		return fmt.Errorf("%w: id is longer than %d bytes or not UTF-8", ErrInvalidNode, MaxIDLen)
	}
	if !validString(n.Address, MaxAddressLen) {
		return fmt.Errorf("%w: address is longer than %d bytes or not UTF-8", ErrInvalidNode, MaxAddressLen)
	}
	if len(n.Services) > MaxServices {
		return fmt.Errorf("%w: %d services, at most %d", ErrInvalidNode, len(n.Services), MaxServices)
	}
	for i, s := range n.Services {
		if s.Name == "" || !validString(s.Name, MaxServiceNameLen) {
			return fmt.Errorf("%w: service %d: empty, oversized or non-UTF-8 name", ErrInvalidNode, i)
		}
		if err := ValidateVersion(s.Version); err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
	}
	if len(n.Metadata) > MaxMetadata {
		return fmt.Errorf("%w: %d metadata entries, at most %d", ErrInvalidNode, len(n.Metadata), MaxMetadata)
	}
	for k, v := range n.Metadata {
		if k == "" || !validString(k, MaxMetadataKeyLen) || !validString(v, MaxMetadataValLen) {
			return fmt.Errorf("%w: metadata %q: empty, oversized or non-UTF-8 key or value", ErrInvalidNode, k)
		}
	}
	return nil
}

func validString(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s)
}
