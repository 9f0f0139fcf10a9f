"""The generator's data: offices with their addresses and phone formats, names, titles, groups."""

from __future__ import annotations

from typing import NamedTuple


class Office(NamedTuple):
    location: str
    street: str
    city: str
    postal_code: str
    state: str | None
    country: str
    country_code: str
    language: str
    company: str
    weight: int
    area_code: str  # national trunk-less area code used for landlines


OFFICES: tuple[Office, ...] = (
    Office("Stockholm HQ", "Kungsgatan 12", "Stockholm", "111 43", None, "Sweden", "SE", "sv-SE",
            "Contoso AB", 30, "8"),
    Office("Göteborg", "Kungsportsavenyen 21", "Göteborg", "411 36", None, "Sweden", "SE",
            "sv-SE", "Contoso AB", 12, "31"),
    Office("Malmö", "Stortorget 3", "Malmö", "211 22", None, "Sweden", "SE", "sv-SE",
            "Contoso AB", 8, "40"),
    Office("Oslo", "Karl Johans gate 16", "Oslo", "0154", None, "Norway", "NO", "nb-NO",
            "Contoso AS", 10, "22"),
    Office("København", "Vesterbrogade 8", "København V", "1620", None, "Denmark", "DK", "da-DK",
            "Contoso ApS", 8, "33"),
    Office("Helsinki", "Mannerheimintie 14", "Helsinki", "00100", None, "Finland", "FI", "fi-FI",
            "Contoso Oy", 7, "9"),
    Office("London", "12 Finsbury Square", "London", "EC2A 1AS", None, "United Kingdom", "GB",
            "en-GB", "Contoso Ltd", 10, "20"),
    Office("New York", "350 Fifth Avenue", "New York", "10118", "NY", "United States", "US",
            "en-US", "Contoso Inc.", 9, "212"),
    Office("Berlin", "Friedrichstraße 68", "Berlin", "10117", None, "Germany", "DE", "de-DE",
            "Contoso GmbH", 6, "30"),
)  # fmt: skip

FIRST: dict[str, tuple[str, ...]] = {
    "SE": ("Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Åsa", "Björn", "Märta", "Göran",
           "Linnéa", "Oskar", "Elin", "Måns", "Ingrid", "Per", "Sofia", "Nils", "Frida", "Anders",
           "Ebba", "Gustav", "Maja", "Olof", "Sara", "Ulrika", "Hampus", "Tove", "Kjell", "Agnes",
           "Jöns", "Ann-Sofie", "Karl-Johan", "Lovisa", "Viktor", "Ylva"),
    "NO": ("Ola", "Kari", "Øystein", "Ingrid", "Håkon", "Sigrid", "Bjørn", "Solveig", "Åse",
           "Torstein", "Ragnhild", "Eirik", "Marit", "Jørgen", "Synnøve"),
    "DK": ("Søren", "Mette", "Jens", "Anne", "Mads", "Freja", "Rasmus", "Ida", "Niels", "Signe",
           "Bjørk", "Jørn", "Kirsten", "Asbjørn"),
    "FI": ("Mikko", "Aino", "Jukka", "Päivi", "Ville", "Sanna", "Tuomas", "Elina", "Jyrki",
           "Kaisa", "Tiina", "Jaana", "Väinö", "Eeva-Liisa"),
    "GB": ("Oliver", "Amelia", "Siân", "Rhys", "Charlotte", "Harry", "Niamh", "Aoife", "George",
           "Emily", "Mary-Jane", "Eóin"),
    "US": ("James", "Mary", "Michael", "Jennifer", "DeShawn", "José", "María", "Emily", "Tyler",
           "Ashley", "Jo Ann", "Brandon"),
    "DE": ("Jürgen", "Sabine", "Lukas", "Sophie", "Jörg", "Katharina", "Maximilian", "Lena",
           "Hans-Peter", "Björn"),
    "INT": ("Zoë", "François", "Chloé", "Ahmed", "Fatima", "Mohammed", "Aïsha", "Dmitrij",
            "Zeynep", "Wei", "Priya", "Ngozi", "Łukasz", "Agnieszka", "Thảo", "Jean-Luc", "Noémie",
            "Ioana", "Renée", "Kenji"),
}  # fmt: skip

LAST: dict[str, tuple[str, ...]] = {
    "SE": ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
           "Persson", "Svensson", "Gustafsson", "Lindqvist", "Berg", "Åberg", "Sjöström",
           "Löfgren", "Ström", "Ekström", "Bäckström", "Håkansson", "Öberg", "Lundgren", "Holm",
           "Björk", "Nyström", "Lindström-Ek", "af Klint", "von Essen", "Wåhlin"),
    "NO": ("Hansen", "Johansen", "Olsen", "Larsen", "Ødegaard", "Bakke", "Haugen", "Sæther",
           "Dahl", "Kristiansen", "Lie", "Bråten", "Strøm-Nilsen"),
    "DK": ("Jensen", "Nielsen", "Hansen", "Pedersen", "Sørensen", "Rasmussen", "Møller", "Kjær",
           "Thomsen", "Poulsen", "Østergaard"),
    "FI": ("Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Hämäläinen", "Koskinen", "Järvinen",
           "Lehtonen", "Heikkilä", "Saarinen"),
    "GB": ("Smith", "Jones", "O'Brien", "Taylor", "Davies", "Evans", "Brown", "Wilson",
           "Smith-Jones", "MacDonald", "O'Connor", "Ap Rhys"),
    "US": ("Johnson", "Williams", "Garcia", "Rodriguez", "Martinez", "Nguyen", "D'Angelo", "Kim",
           "Patel", "Washington", "St. James"),
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Groß", "Schäfer", "Köhler",
           "Bauer", "Hoffmann"),
    "INT": ("Nguyễn", "Kowalski", "Wiśniewska", "Yılmaz", "Al-Sayed", "Dubois", "Le Goff",
            "García Márquez", "Chen", "Ivanova", "Okafor", "Çelik", "Đorđević", "N'Diaye",
            "Dvořák", "Sánchez", "Papadopoulos", "𠮷田"),
}  # fmt: skip

# Names that downstream code must survive; each org of a reasonable size gets all of them.
EDGE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Siobhán", "O'Sullivan", "GB"),
    ("Anna-Karin", "Lindström-Ek", "SE"),
    ("Kenji", "𠮷田", "INT"),
    ("Øyvind", "Ødegård", "NO"),
    ("Zoë", "Ångström", "SE"),
)

DEPARTMENTS: tuple[str, ...] = (
    "Engineering", "Sales", "Marketing", "Finance", "Human Resources", "Customer Success",
    "Operations", "Legal & Compliance", "IT", "Product", "Kundtjänst", "Research & Development",
)  # fmt: skip

TITLES: dict[str, tuple[str, ...]] = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Systemutvecklare",
                    "Site Reliability Engineer", "QA Engineer", "Staff Engineer"),
    "Sales": ("Account Executive", "Key Account Manager", "Säljare", "Sales Development Rep"),
    "Marketing": ("Marketing Specialist", "Content Writer", "Brand Designer", "SEO Specialist"),
    "Finance": ("Accountant", "Ekonomiassistent", "Financial Controller", "Payroll Specialist"),
    "Human Resources": ("HR Partner", "Recruiter", "HR-specialist", "People Coordinator"),
    "Customer Success": ("Customer Success Manager", "Support Engineer", "Onboarding Specialist"),
    "Operations": ("Operations Analyst", "Logistics Coordinator", "Facilities Coordinator"),
    "Legal & Compliance": ("Legal Counsel", "Compliance Officer", "Paralegal", "Jurist"),
    "IT": ("IT Technician", "System Administrator", "IT-tekniker", "Service Desk Agent"),
    "Product": ("Product Manager", "UX Designer", "Product Owner", "UX Researcher"),
    "Kundtjänst": ("Kundtjänstmedarbetare", "Kundrådgivare", "Teamkoordinator"),
    "Research & Development": ("Research Scientist", "Lab Technician", "Forskningsingenjör"),
}  # fmt: skip

PROJECTS: tuple[str, ...] = (
    "Aurora", "Borealis", "Fjällräv", "Älgen", "Midnattssol", "Nordstjärnan", "Kraken", "Valkyrie",
    "Odin", "Freja", "Skärgården", "Tundra", "Glacier", "Fika Club", "Innovation Lab",
    "Safety Committee", "Mentoring Programme", "Green Team", "Onboarding 2025", "Hackathon",
    "ERP Migration", "Café Crew", "Zürich Pilot", "Ω Initiative", "Data Guild", "Security Champions",
)  # fmt: skip

CODES = {o.country: o.country_code for o in OFFICES}
INVALID_PHONES: tuple[str, ...] = ("12", "n/a", "-", "+46", "070-12", "ext. 4411", "0000")
