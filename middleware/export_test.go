package middleware

// The reasons the package keeps unexported, for its external tests, which
// check that each refusal has its precise cause and not merely its answer
// (ErrInvalidToken).
var (
	ReasonMalformedToken    = errMalformedToken
	ReasonTokenType         = errTokenType
	ReasonAlgorithm         = errAlgorithm
	ReasonUnknownKey        = errUnknownKey
	ReasonKeyMismatch       = errKeyMismatch
	ReasonSignature         = errSignature
	ReasonMissingClaim      = errMissingClaim
	ReasonIssuer            = errIssuer
	ReasonAudience          = errAudience
	ReasonNotYetValid       = errNotYetValid
	ReasonIssuedInFuture    = errIssuedInFuture
	ReasonWrongTokenType    = errWrongTokenType
	ReasonInactive          = errInactive
	ReasonInsufficientScope = errInsufficientScope
)
