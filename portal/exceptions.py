"""Named domain errors. Each carries a French message for the person who caused it.

Views and CLI commands catch `DomainError`, show `str(error)` and roll back: nothing is written.

Every refusal is a class here whose `message` is a lazy translatable string; what varies is
passed as keyword arguments, e.g. `raise PeriodNotOver(period="2026-03")` for a message with
`%(period)s`. A literal `%` in a message is written `%%`. The portal never passes a message of
its own (tests/test_refusals.py checks the source).

One module on purpose, longer than 450 lines: it is the catalogue of the named refusals, a few lines
each, and tests/test_refusals.py requires every domain error to be declared here.
"""

from __future__ import annotations

from .i18n import lazy_gettext as _l


class DomainError(Exception):
    """Base of every refusal of the domain; `str()` is the French message."""

    message = _l("Action impossible.")
    http_status = 409

    def __init__(self, message: str | None = None, **params: object) -> None:
        # `message` is for tests injecting a fault; the portal raises named classes only.
        self.params = params
        self.custom_message = message
        super().__init__(message or self.message)

    def __str__(self) -> str:
        # Always %-formatted, with an empty mapping when there are no params, so that `%%`
        # renders as `%` whether or not the message has placeholders.
        return str(self.custom_message or self.message) % self.params


class InvalidInput(DomainError):
    http_status = 400
    message = _l("Saisie invalide.")


class UnknownProduct(InvalidInput):
    message = _l("Produit inconnu.")


class InvalidQuantity(InvalidInput):
    message = _l("La quantité doit être un nombre entier supérieur à zéro.")


class InvalidPrice(InvalidInput):
    message = _l("Le prix unitaire ne peut pas être négatif.")


class InvalidVatRate(InvalidInput):
    message = _l("Taux de TVA non autorisé : choisissez 0 %%, 2,1 %%, 5,5 %%, 10 %% ou 20 %%.")


class InvalidPeriod(InvalidInput):
    message = _l("Période invalide : indiquez un mois échu au format AAAA-MM.")


class InvalidRecipient(InvalidInput):
    message = _l(
        "Le destinataire doit être un responsable ou un gestionnaire de l'organisation du devis."
    )


class EmptyQuote(InvalidInput):
    message = _l("Un devis doit comporter au moins une ligne.")


class LineLabelMissing(InvalidInput):
    message = _l("Chaque ligne libre doit avoir un libellé.")


class LinePriceMissing(InvalidInput):
    message = _l("Chaque ligne libre doit avoir un prix unitaire.")


class InvalidValidity(InvalidInput):
    message = _l("La durée de validité doit être comprise entre 1 et 365 jours.")


class RevisionInProgress(InvalidInput):
    message = _l("Une révision de ce devis est déjà en préparation.")


class QuoteNotDraft(DomainError):
    message = _l("Ce devis n'est plus un brouillon : il ne peut plus être modifié.")


class QuoteNotPending(DomainError):
    message = _l("Ce devis n'est plus en attente de décision (déjà validé, refusé, annulé ou remplacé).")


class QuoteExpired(DomainError):
    message = _l("Ce devis a expiré : sa date de validité est dépassée.")


class NotAllowed(DomainError):
    http_status = 403
    message = _l("Vous n'avez pas le droit d'effectuer cette action.")


class MandateMissing(NotAllowed):
    message = _l(
        "Ce client n'a pas autorisé la validation de devis pour son compte : "
        "la validation par l'équipe commerciale est impossible."
    )


class DecidingRoleRequired(NotAllowed):
    message = _l("Seul un responsable ou un gestionnaire peut valider ou refuser un devis.")


class MandateChangeNotAllowed(NotAllowed):
    message = _l("Seul le responsable de l'organisation peut modifier cette autorisation.")


class PayingRoleRequired(NotAllowed):
    message = _l("Seuls le responsable et les gestionnaires de l’organisation peuvent régler une facture.")


class TermsMissing(DomainError):
    message = _l("Aucune version des Conditions Générales de Vente n'est publiée.")


class TermsChanged(DomainError):
    message = _l(
        "Les Conditions Générales de Vente ont changé depuis l'affichage de la page : "
        "lisez la nouvelle version avant de décider."
    )


class TermsPublished(DomainError):
    message = _l("Une version publiée des Conditions Générales de Vente ne peut plus être modifiée.")


class TermsAlreadyPublished(InvalidInput):
    message = _l("Cette version des CGV est déjà publiée.")


class TermsBodyMissing(InvalidInput):
    message = _l("Le texte des Conditions Générales de Vente ne peut pas être vide.")


class TermsLabelMissing(InvalidInput):
    message = _l("Indiquez un libellé de version pour les CGV.")


class RequestNotOpen(DomainError):
    message = _l("Cette demande de devis a déjà été traitée.")


class EmptyRequest(InvalidInput):
    message = _l("Choisissez au moins un produit.")


class DeclineReasonMissing(InvalidInput):
    message = _l("Indiquez le motif du refus de la demande.")


class InvoiceImmutable(DomainError):
    message = _l("Une facture émise ne peut être ni modifiée ni supprimée ; émettez un avoir.")


class InvoiceNotPayable(DomainError):
    message = _l("Cette facture n'est pas à régler (déjà payée ou annulée).")


class InvoiceNotCancellable(DomainError):
    message = _l("Seule une facture émise et non réglée peut être annulée par un avoir.")


class EmptyInvoice(InvalidInput):
    message = _l("Une facture doit comporter au moins une ligne.")


class CreditNoteReasonMissing(InvalidInput):
    message = _l("Indiquez le motif de l'avoir.")


class PaymentMismatch(InvalidInput):
    message = _l("Le montant ou la devise du paiement ne correspond pas à la facture.")


class PaymentReferenceTaken(PaymentMismatch):
    message = _l("Cette référence de paiement est déjà rattachée à une autre facture.")


class InsufficientCredits(DomainError):
    message = _l("Solde de crédits insuffisant (solde disponible : %(balance)s).")


class InvalidConsumption(InvalidInput):
    message = _l("Le nombre de crédits consommés doit être supérieur à zéro.")


class AdjustmentReasonMissing(InvalidInput):
    message = _l("Indiquez le motif de l'ajustement.")


class ZeroAdjustment(InvalidInput):
    message = _l("Un ajustement de zéro crédit n'a pas d'effet.")


class PeriodNotOver(InvalidPeriod):
    message = _l("La période %(period)s n'est pas terminée : elle ne peut pas encore être facturée.")


class UnknownLifecycleStatus(InvalidInput):
    message = _l("Statut inconnu : choisissez déposée, rejetée, refusée ou approuvée.")


class LifecycleStatusByPaymentOnly(InvalidInput):
    message = _l("« Encaissée » s'enregistre avec le paiement : enregistrez le virement reçu.")


class LifecycleDateInFuture(InvalidInput):
    message = _l("La date du statut ne peut pas être dans le futur.")


class CloseAlreadyQueued(DomainError):
    message = _l("La clôture de %(period)s est déjà en file d'attente ou en cours : "
                 "suivez son avancement sur cette page.")


class NothingToBill(DomainError):
    message = _l("Rien à facturer pour cette organisation sur cette période.")


class SellerSettingsIncomplete(DomainError):
    message = _l("Paramètres vendeur incomplets : renseignez %(fields)s avant d'émettre une facture.")


class MagicLinkInvalid(DomainError):
    http_status = 404
    message = _l("Ce lien de connexion n'est pas valide : connectez-vous avec votre mot de passe.")


class MagicLinkExpired(MagicLinkInvalid):
    http_status = 410
    message = _l(
        "Ce lien de connexion a expiré : connectez-vous avec votre mot de passe "
        "ou demandez l'envoi d'un nouveau lien."
    )


class MagicLinkUsed(MagicLinkInvalid):
    http_status = 410
    message = _l(
        "Ce lien de connexion a déjà été utilisé : connectez-vous avec votre mot de passe "
        "ou demandez l'envoi d'un nouveau lien."
    )


class MagicLinkSuperseded(MagicLinkInvalid):
    http_status = 410
    message = _l(
        "Ce devis a été remplacé par une version plus récente : ouvrez le lien du dernier email "
        "reçu ou connectez-vous à votre espace client."
    )


class EmailNotRetryable(DomainError):
    message = _l("Seul un email en échec peut être remis en file d'envoi.")


class DuplicateSubmission(DomainError):
    message = _l("Ce formulaire a déjà été envoyé : l'action a été prise en compte une seule fois.")


class IncompleteForm(InvalidInput):
    message = _l("Formulaire incomplet : rechargez la page et recommencez.")


class CardPaymentUnavailable(DomainError):
    http_status = 503
    message = _l(
        "Le paiement par carte est momentanément indisponible : réessayez dans quelques instants "
        "ou réglez par virement."
    )


class CardDeclined(DomainError):
    http_status = 402
    message = _l(
        "Votre carte a été refusée : aucun montant n'a été débité. Essayez une autre carte "
        "ou réglez par virement."
    )


class PaymentIntentRefused(DomainError):
    message = _l("Ce paiement ne correspond pas à cette facture : rien n'a été enregistré.")


class CardNotRecognised(InvalidInput):
    message = _l("Carte non reconnue : rechargez la page et recommencez.")


class WebhookRejected(InvalidInput):
    message = _l("Notification refusée : signature Stripe absente, invalide ou trop ancienne.")


# --- Typed input: numbers and legal identities (portal.forms.parse_int, portal.validation) -----


class InvalidNumber(InvalidInput):
    message = _l("Nombre invalide : saisissez un nombre entier compris entre %(minimum)s et %(maximum)s.")


class QuantityOutOfRange(InvalidQuantity):
    message = _l("La quantité doit être un nombre entier compris entre %(minimum)s et %(maximum)s.")


class RequestedQuantityOutOfRange(QuantityOutOfRange):
    message = _l("Quantité invalide pour « %(name)s » : saisissez un nombre entier de 0 à %(maximum)s.")


class QuoteTooLarge(InvalidInput):
    message = _l("Montant ou nombre de crédits trop élevé : répartissez la commande sur plusieurs devis.")


class InvalidSiren(InvalidInput):
    message = _l("SIREN invalide : 9 chiffres dont le dernier est une clé de contrôle, "
                 "par exemple 732 829 320.")


class SirenChecksum(InvalidSiren):
    message = _l("SIREN invalide : sa clé de contrôle ne correspond pas ; vérifiez les 9 chiffres.")


class InvalidSiret(InvalidInput):
    message = _l("SIRET invalide : 14 chiffres dont le dernier est une clé de contrôle, "
                 "par exemple 732 829 320 00074.")


class SiretChecksum(InvalidSiret):
    message = _l("SIRET invalide : sa clé de contrôle ne correspond pas ; vérifiez les 14 chiffres.")


class SiretOfAnotherSiren(InvalidSiret):
    message = _l("Le SIRET doit commencer par le SIREN de l'organisation (%(siren)s).")


class InvalidVatNumber(InvalidInput):
    message = _l("Numéro de TVA intracommunautaire invalide : le code d'un État membre de l'Union "
                 "européenne suivi du numéro, par exemple FR44732829320.")


class InvalidForeignVatNumber(InvalidVatNumber):
    message = _l("Numéro de TVA invalide : après le code pays %(prefix)s, 2 à 12 chiffres ou lettres.")


class InvalidFrenchVatNumber(InvalidVatNumber):
    message = _l("Numéro de TVA français invalide : FR, une clé de 2 chiffres puis "
                 "les 9 chiffres du SIREN, par exemple FR44732829320.")


class FrenchVatKeyMismatch(InvalidVatNumber):
    message = _l("Numéro de TVA français invalide : sa clé ne correspond pas au SIREN %(siren)s.")


class VatNumberOfAnotherSiren(InvalidVatNumber):
    message = _l("Le numéro de TVA ne correspond pas au SIREN de l'organisation (%(siren)s).")


class InvalidCountry(InvalidInput):
    message = _l("Pays inconnu : choisissez un pays de la liste (code ISO à deux lettres, par exemple FR).")


class InvalidPostalCode(InvalidInput):
    message = _l("Code postal invalide : 10 lettres, chiffres, espaces ou tirets au plus.")


class InvalidFrenchPostalCode(InvalidPostalCode):
    message = _l("Le code postal compte 5 chiffres en France, par exemple 69001.")


class InvalidEmail(InvalidInput):
    message = _l("Adresse email invalide : vérifiez sa saisie.")


class EmailTooLong(InvalidEmail):
    message = _l("Adresse email trop longue.")


class PriceTooLarge(InvalidPrice):
    message = _l("Le prix unitaire ne peut pas dépasser 999 999 999,99 €.")


# --- Sign-in and passwords (portal.auth) ----------------------------------------------------------


class InvalidCredentials(InvalidInput):
    message = _l("Adresse email ou mot de passe incorrect.")


class AccountLocked(DomainError):
    """Too many sign-in attempts on one email address: refused a while, whatever the password
    (the same for an address without an account, so the answer never tells whether one exists)."""

    http_status = 429
    message = _l(
        "Ce compte est temporairement verrouillé après trop de tentatives de connexion : "
        "réessayez dans %(minutes)s min ou connectez-vous avec un lien reçu par email."
    )


class StaffAccountLocked(AccountLocked):
    message = _l(
        "Ce compte est temporairement verrouillé après trop de tentatives de connexion : "
        "réessayez dans %(minutes)s min."
    )


class WrongCurrentPassword(InvalidInput):
    message = _l("Le mot de passe actuel est incorrect : votre mot de passe n'a pas été changé.")


class PasswordTooShort(InvalidInput):
    message = _l("Le mot de passe doit comporter au moins %(length)s caractères.")


class PasswordsDiffer(InvalidInput):
    message = _l("Les deux mots de passe ne correspondent pas.")


# --- Staff roles and accounts (portal.accounts, the back office) ---------------------------------


class AdminRequired(NotAllowed):
    message = _l("Réservé aux administrateurs : demandez-le à un administrateur du portail.")


class OwnAccountDeactivation(NotAllowed):
    message = _l("Vous ne pouvez pas désactiver votre propre compte : demandez-le à un autre administrateur.")


class OwnRoleChange(NotAllowed):
    message = _l("Vous ne pouvez pas changer votre propre rôle : demandez-le à un autre administrateur.")


class UnknownStaffRole(InvalidInput):
    message = _l("Rôle inconnu : choisissez administrateur ou commercial.")


class UnknownClientRole(InvalidInput):
    message = _l("Rôle inconnu : choisissez responsable, gestionnaire ou membre.")


class UnknownLanguage(InvalidInput):
    message = _l("Langue inconnue : choisissez français ou anglais.")


class OrganisationMissing(InvalidInput):
    message = _l("Choisissez l'organisation de l'utilisateur.")


class FullNameMissing(InvalidInput):
    message = _l("Indiquez le nom complet de l'utilisateur.")


class EmailAlreadyUsed(InvalidInput):
    message = _l("Un compte existe déjà avec l'adresse %(email)s.")


class UnknownSellerField(InvalidInput):
    message = _l("Champ inconnu : %(fields)s.")


class SellerSettingsConflict(InvalidInput):
    message = _l("Les paramètres viennent d'être enregistrés par quelqu'un d'autre : "
                 "rechargez la page et recommencez.")


# --- The platform API (portal/api/, portal/api_keys.py) ---------------------------------------


class ApiKeyNameMissing(InvalidInput):
    message = _l("Indiquez le nom de la clé d'API.")


class ApiKeyScopesMissing(InvalidInput):
    message = _l("Choisissez au moins une autorisation pour la clé d'API.")


class UnknownApiScope(InvalidInput):
    message = _l("Autorisation inconnue : %(scope)s (autorisations possibles : %(scopes)s).")


class ApiKeyAlreadyRevoked(DomainError):
    message = _l("Cette clé d'API est déjà révoquée.")


class ApiKeyInvalid(DomainError):
    http_status = 401
    message = _l("Clé d'API absente, inconnue ou révoquée : envoyez « Authorization: Bearer <clé> ».")


class ApiScopeMissing(DomainError):
    http_status = 403
    message = _l("Cette clé d'API n'a pas l'autorisation « %(scope)s ».")


class IdempotencyKeyMissing(InvalidInput):
    message = _l("L'en-tête Idempotency-Key est obligatoire pour cette requête (1 à 255 caractères).")


class IdempotencyKeyReused(DomainError):
    http_status = 422
    message = _l("Cette clé d'idempotence a déjà servi pour une requête différente.")


class InvalidApiBody(InvalidInput):
    message = _l("Le corps de la requête doit être un objet JSON.")


class InvalidApiField(InvalidInput):
    http_status = 422
    message = _l("Le champ « %(field)s » est manquant ou invalide : %(expected)s.")


class InvalidCursor(InvalidInput):
    message = _l("Curseur de pagination invalide : reprenez la valeur « next_cursor » d'une réponse.")


class ApiResourceNotFound(DomainError):
    """No such object for the API: one `code` for all, the kind in `resource`."""

    http_status = 404
    code = "api_resource_not_found"
    message = _l("Ressource introuvable.")


class OrganisationNotFound(ApiResourceNotFound):
    message = _l("Organisation introuvable.")


class QuoteNotFound(ApiResourceNotFound):
    message = _l("Devis introuvable.")


class InvoiceNotFound(ApiResourceNotFound):
    message = _l("Facture introuvable.")


class ClientUserNotFound(DomainError):
    http_status = 404
    message = _l("Aucun utilisateur client actif avec l'adresse %(email)s.")


class InvalidPortalPath(InvalidInput):
    http_status = 422
    message = _l("Le chemin « next » doit être une page de l'espace client (il commence par %(prefix)s).")


class ExternalIdAlreadyUsed(InvalidInput):
    message = _l("L'identifiant externe %(external_id)s est déjà celui d'une autre organisation.")


# --- Webhook endpoints (portal/webhook_endpoints.py) ----------------------------------------------


class InvalidWebhookUrl(InvalidInput):
    message = _l("Adresse invalide : indiquez une URL complète, par exemple "
                 "https://plateforme.example/webhooks/portail (2000 caractères au plus, sans espace).")


class WebhookUrlCredentials(InvalidWebhookUrl):
    message = _l("L'adresse ne doit pas contenir d'identifiant ni de mot de passe (« nom:mot-de-passe@ ») : "
                 "chaque envoi est authentifié par sa signature.")


class WebhookHttpsRequired(InvalidWebhookUrl):
    message = _l("L'adresse doit commencer par https:// : les événements ne partent qu'en HTTPS.")


class WebhookAddressForbidden(InvalidWebhookUrl):
    message = _l("L'adresse %(address)s est celle d'un service de métadonnées du nuage : elle est toujours "
                 "refusée.")


class WebhookAddressLocal(InvalidWebhookUrl):
    message = _l("L'adresse %(address)s n'est pas publique (boucle locale, réseau privé ou réservé) : "
                 "indiquez une adresse joignable sur Internet.")


class WebhookEventTypesMissing(InvalidInput):
    message = _l("Choisissez au moins un type d'événement.")


class UnknownWebhookEventType(InvalidInput):
    message = _l("Type d'événement inconnu : %(event_type)s (types possibles : %(event_types)s).")


class WebhookDescriptionTooLong(InvalidInput):
    message = _l("La description fait 200 caractères au plus.")


class WebhookEndpointDisabled(DomainError):
    message = _l("Ce point de réception est désactivé : réactivez-le d'abord (« Modifier »).")


class WebhookDeliveryNotResendable(DomainError):
    message = _l("Cet envoi est déjà en file d'attente : il part à sa prochaine tentative.")


# --- Decisions on the client's behalf -----------------------------------------------------------


class OnBehalfNoteMissing(InvalidInput):
    message = _l("Indiquez comment le client a demandé cette décision (par exemple « demande par "
                 "téléphone de M. Martin le 3/12 ») : la note est gardée dans la preuve et lui est montrée.")


class OnBehalfNoteTooLong(InvalidInput):
    message = _l("La note fait %(maximum)s caractères au plus.")
