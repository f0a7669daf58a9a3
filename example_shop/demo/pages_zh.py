"""The demo page tree's copy in Simplified Chinese (zh-Hans): the translations
:mod:`example_shop.demo.pages` makes of the English pages."""

from wagtail.rich_text import RichText

LOGIN_PATH = "/shop/accounts/login/"

HOME = {
    "title": "莲记茶舍",
    "intro": (
        "<p>杭州、安徽山间的绿茶，安溪与武夷山的乌龙，景德镇、龙泉窑口的茶器："
        "每一件都由天天喝茶的人亲自挑选。</p>"
    ),
}


def home_body(members_page):
    return [
        ("heading", "今春新茶，鲜采直达"),
        (
            "paragraph",
            RichText(
                "<p>绿茶均为明前采摘，小罐分装，到您手中依旧鲜爽。乌龙与红茶来自"
                "合作多年的茶农人家，沿用传统工艺焙制。</p>"
            ),
        ),
        ("heading", "好茶配好器"),
        (
            "paragraph",
            RichText(
                "<p>从入门的第一只<b>盖碗</b>到手工宜兴紫砂壶，还有青瓷、汝窑、"
                "建盏品茗杯，总有一款适合您的茶桌。</p>"
            ),
        ),
        (
            "call_to_action",
            {
                "title": "加入会员俱乐部",
                "text": "每消费1元得1积分，等级越高权益越多，积分有效期长达一年。",
                "button_label": "了解会员规则",
                "page": members_page,
                "url": "",
            },
        ),
    ]


MEMBERS = {
    "title": "会员俱乐部",
    "intro": (
        "<p>每笔订单都能赚积分，从普通会员一路升级到钻石卡，会员权益随等级"
        "不断升级。首次下单即自动成为会员。</p>"
    ),
    "body": [
        ("heading", "会员规则"),
        (
            "paragraph",
            RichText(
                "<ul><li>在商城每消费<b>¥1 得 1 积分</b>。</li>"
                "<li>积分余额与明细都在“我的账户”中，与订单记录一目了然。</li>"
                "<li>积分自获得之日起<b>12 个月</b>内有效，按先到期先使用的顺序扣减；"
                "到期前我们会提醒您。</li></ul>"
            ),
        ),
        ("heading", "四大会员等级"),
        (
            "paragraph",
            RichText(
                "<p>会员等级根据您的累计消费金额确定：</p>"
                "<ul><li><b>普通会员</b>：首次下单即可获得</li>"
                "<li><b>银卡</b>：累计消费满 ¥1,000</li>"
                "<li><b>金卡</b>：累计消费满 ¥4,000</li>"
                "<li><b>钻石卡</b>：累计消费满 ¥10,000</li></ul>"
                "<p>高等级会员享有所有低等级权益，并额外解锁专属权益。"
                "累计消费达标后即时升级。</p>"
            ),
        ),
        (
            "call_to_action",
            {
                "title": "立即开始赚积分",
                "text": "登录或注册账户，从第一天起，每笔订单都能累积积分。",
                "button_label": "登录 / 注册",
                "page": None,
                "url": LOGIN_PATH,
            },
        ),
    ],
}

BENEFITS = {
    "title": "等级权益",
    "intro": (
        "<p>各等级权益一览，清晰对比。下表为当前会员计划的最新内容；"
        "高等级会员均享有所有低等级权益。</p>"
    ),
}

BENEFIT_PAGES = {
    "birthday-treat": {
        "title": "生日礼遇",
        "summary": "每年生日当周，送您一张 ¥20 优惠券。",
        "paragraph": (
            "<p>在账户的“会员积分”页填写生日，我们会在您生日前几天发放优惠券，"
            "有效期一个月。</p>"
        ),
    },
    "free-shipping": {
        "title": "全场包邮",
        "summary": "无论订单金额大小，一律免运费。",
        "paragraph": "<p>金卡及以上会员，每笔订单均享标准快递免邮。</p>",
    },
    "spring-tasting": {
        "title": "春茶品鉴会",
        "summary": "在杭州与我们的买手一起品尝当年头春新茶。",
        "paragraph": (
            "<p>每年四月，我们的买手会从山里带回新采的龙井与黄山毛峰。"
            "新茶上架前，诚邀金卡与钻石卡会员抢先品鉴：来信即可预约席位。</p>"
        ),
    },
}

REWARDS = {
    "title": "积分兑换",
    "intro": (
        "<p>用积分兑换商城优惠券。兑换成功即刻到账，可在“我的优惠券”中查看券码。</p>"
    ),
}

COMMUNITY = {
    "title": "茶友社区",
    "intro": (
        "<p>买手茶记、会员日活动与会员故事都在这里。部分内容仅限会员阅读，"
        "部分仅对高等级会员开放。</p>"
    ),
}

POSTS = {
    "brewing-oolong-gongfu-style": {
        "title": "功夫茶泡法：乌龙这样泡才好喝",
        "summary": "小壶、快出汤、多冲泡：看看我们的买手怎么泡铁观音。",
        "paragraph": (
            "<p>先温壶，洗茶一次，第一泡浸泡十秒出汤，之后每泡延长五秒。"
            "好的铁观音可以冲泡六到七次。</p>"
        ),
    },
    "members-day-spring": {
        "title": "会员日：春茶开采季",
        "summary": "在杭州门店品尝今年第一口龙井。",
        "paragraph": "<p>所有会员均可参加，欢迎带上好友一起来。</p>",
        "place": "杭州市河坊街18号 莲记茶舍",
    },
    "gold-tasting-wuyi": {
        "title": "金卡之夜：武夷岩茶品鉴",
        "summary": "由制茶师傅亲自带领，品鉴五款岩茶。",
        "paragraph": "<p>限额十二席，仅对金卡与钻石卡会员开放。</p>",
        "place": "杭州 莲记茶舍品鉴室",
        "figure_alt": "品鉴桌上的五杯武夷岩茶",
        "figure_caption": "去年春天的金卡之夜：五款岩茶，一位茶农，十二个席位。",
    },
    "my-first-gaiwan": {
        "title": "我的第一只盖碗",
        "summary": "一只白瓷盖碗，改变了我每天早上的那杯茶。",
        "paragraph": "<p>以前我总是用马克杯泡茶。是盖碗让我学会了好好看一看茶叶。</p>",
        "author_name": "美",
    },
}
