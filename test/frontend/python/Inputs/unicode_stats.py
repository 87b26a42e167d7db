# -*- coding: utf-8 -*-
"""Statistiques de texte: identifiers and strings outside ASCII."""

import unicodedata

ÉCHELLE = 100
résumé = {}


def catégorie(caractère):
    """Première lettre de la catégorie Unicode: L, N, P, S, Z, C ou M."""
    return unicodedata.category(caractère)[0]


def compter(texte, échelle=ÉCHELLE):
    global résumé
    totaux = {}
    for c in texte:
        clé = catégorie(c)
        totaux[clé] = totaux.get(clé, 0) + 1
    somme = sum(totaux.values()) or 1
    résumé = {k: round(échelle * v / somme, 1) for k, v in totaux.items()}
    return résumé


class Rapport:
    titre = "Résumé — 統計"

    def __init__(self, texte):
        self.texte = texte
        self.parts = compter(texte)

    def lignes(self):
        yield self.titre
        for clé, part in sorted(self.parts.items(), key=lambda kv: -kv[1]):
            nom = {"L": "lettres", "N": "chiffres", "Z": "espaces"}.get(clé, clé)
            yield f"  {nom:>10} {part:5.1f} %"


def principal():
    exemple = "Ça coûte 12 € — très cher! 東京 2024"
    for ligne in Rapport(exemple).lignes():
        print(ligne)
    δ = len(exemple) - len(exemple.encode("ascii", "ignore"))
    print("non-ASCII:", δ)
    return δ


if __name__ == "__main__":
    principal()
